{{/*
The ONE place where values become environment variables. Services read all
their configuration from these variables; when a variable is renamed in a
service, change it here only.

  preflight.env.kafka    Kafka connection + topic names (services, workers, topics Job)
  preflight.env.otel     OpenTelemetry
  preflight.env.service  everything a long-running service gets (by component)
  preflight.env.worker   what a benchmark worker Job gets

Arg of each: (dict "root" $ "name" <component> "c" <component values>).
*/}}

{{- define "preflight.env.kafka" -}}
{{- $k := .root.Values.kafka -}}
{{- $creds := .c.kafkaCredentials | default dict -}}
- name: PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: PREFLIGHT_KAFKA_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL" $k.securityProtocol }}
- name: PREFLIGHT_KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: PREFLIGHT_KAFKA_SASL_USERNAME
  value: {{ $creds.username | default $k.sasl.username | quote }}
- name: PREFLIGHT_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- $ps := $creds.passwordSecret | default dict }}
      name: {{ $ps.name | default $k.sasl.passwordSecret.name }}
      key: {{ $ps.key | default $k.sasl.passwordSecret.key }}
{{- end }}
{{- if $k.tls.caSecret.name }}
- name: PREFLIGHT_KAFKA_SSL_CAFILE
  value: /etc/preflight/kafka-ca/ca.crt
{{- end }}
- name: PREFLIGHT_TOPIC_SUBMISSIONS
  value: {{ $k.topics.names.submissions | quote }}
- name: PREFLIGHT_TOPIC_BENCHMARK_JOBS
  value: {{ $k.topics.names.benchmarkJobs | quote }}
- name: PREFLIGHT_TOPIC_BENCHMARK_RESULTS
  value: {{ $k.topics.names.benchmarkResults | quote }}
- name: PREFLIGHT_TOPIC_REVIEWS
  value: {{ $k.topics.names.reviews | quote }}
- name: PREFLIGHT_TOPIC_FINDINGS
  value: {{ $k.topics.names.findings | quote }}
- name: PREFLIGHT_TOPIC_ALERTS
  value: {{ $k.topics.names.alerts | quote }}
{{- end -}}

{{- define "preflight.env.topicsJob" -}}
{{- $t := .root.Values.kafka.topics -}}
- name: PREFLIGHT_TOPIC_PARTITIONS
  value: {{ $t.partitions | quote }}
- name: PREFLIGHT_TOPIC_REPLICATION_FACTOR
  value: {{ $t.replicationFactor | quote }}
- name: PREFLIGHT_TOPIC_DEAD_LETTER
  value: {{ $t.deadLetter | quote }}
- name: PREFLIGHT_TOPIC_CONFIG
  value: {{ $t.config | default dict | toJson | quote }}
{{- end -}}

{{- define "preflight.env.otel" -}}
{{- $t := .root.Values.telemetry -}}
- name: OTEL_SERVICE_NAME
  value: {{ printf "preflight-%s" .name | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- $attrs := list "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" }}
{{- range $k, $v := $t.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- if $t.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $t.otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $t.otlpProtocol | quote }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
{{- if and $t.metrics.enabled (ne .name "worker") (ne .name "topics") }}
- name: OTEL_METRICS_EXPORTER
  value: prometheus
- name: OTEL_EXPORTER_PROMETHEUS_HOST
  value: "0.0.0.0"
- name: OTEL_EXPORTER_PROMETHEUS_PORT
  value: {{ $t.metrics.port | quote }}
{{- else if not $t.otlpEndpoint }}
- name: OTEL_METRICS_EXPORTER
  value: none
{{- end }}
{{- end -}}

{{/* A secretKeyRef env var. Arg: (list NAME SECRET KEY OPTIONAL). */}}
{{- define "preflight.env.secret" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ index . 2 }}
      {{- if index . 3 }}
      optional: true
      {{- end }}
{{- end -}}

{{- define "preflight.env.service" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $secret := include "preflight.secretName" . -}}
- name: PREFLIGHT_GRPC_LISTEN
  value: {{ printf "0.0.0.0:%d" (int $c.grpcPort) | quote }}
{{ include "preflight.env.secret" (list "PREFLIGHT_DATABASE_URL" $secret $c.secretKeys.databaseUrl false) }}
{{ include "preflight.env.kafka" . }}
{{ include "preflight.env.otel" . }}
{{- if ne .name "intake" }}
- name: PREFLIGHT_IDENTITY_TARGET
  value: {{ include "preflight.identityTarget" $root | quote }}
{{ include "preflight.env.secret" (list "PREFLIGHT_SERVICE_TOKEN" $secret $c.secretKeys.serviceToken false) }}
{{- end }}
{{- if eq .name "intake" }}
{{ include "preflight.env.secret" (list "PREFLIGHT_INTAKE_ENCRYPTION_KEYS" $secret $c.secretKeys.encryptionKeys false) }}
{{- else if eq .name "clearinghouse" }}
{{ include "preflight.env.secret" (list "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY" $secret $c.secretKeys.signingKey false) }}
- name: PREFLIGHT_CLEARINGHOUSE_POLICY_FILE
  value: /etc/preflight/config/policy.yaml
{{- else if eq .name "benchmark" }}
{{- $w := $c.worker }}
- name: PREFLIGHT_BENCHMARK_CATALOG_FILE
  value: /etc/preflight/config/catalog.yaml
- name: PREFLIGHT_BENCHMARK_EXECUTOR
  value: {{ $c.executor | quote }}
- name: PREFLIGHT_BENCHMARK_NAMESPACE
  value: {{ include "preflight.jobNamespace" $root | quote }}
- name: PREFLIGHT_BENCHMARK_WORKER_IMAGE
  value: {{ include "preflight.image" (dict "root" $root "image" $w.image) | quote }}
- name: PREFLIGHT_BENCHMARK_WORKER_JOB_TEMPLATE_FILE
  value: /etc/preflight/config/worker-job.yaml
- name: PREFLIGHT_BENCHMARK_WORKER_SERVICE_ACCOUNT
  value: {{ include "preflight.workerServiceAccountName" $root | quote }}
- name: PREFLIGHT_BENCHMARK_WORKER_GPU_COUNT
  value: {{ $w.gpu.count | quote }}
{{- if $w.kueue.enabled }}
- name: PREFLIGHT_BENCHMARK_KUEUE_QUEUE
  value: {{ $w.kueue.queueName | quote }}
{{- end }}
{{- else if eq .name "notifier" }}
- name: PREFLIGHT_NOTIFIER_ROUTING_FILE
  value: /etc/preflight/config/routing.yaml
- name: PREFLIGHT_SMTP_HOST
  value: {{ $c.smtp.host | quote }}
- name: PREFLIGHT_SMTP_PORT
  value: {{ $c.smtp.port | quote }}
- name: PREFLIGHT_SMTP_FROM
  value: {{ $c.smtp.from | quote }}
- name: PREFLIGHT_SMTP_STARTTLS
  value: {{ $c.smtp.starttls | quote }}
{{ include "preflight.env.secret" (list "PREFLIGHT_SMTP_USERNAME" $secret $c.secretKeys.smtpUsername true) }}
{{ include "preflight.env.secret" (list "PREFLIGHT_SMTP_PASSWORD" $secret $c.secretKeys.smtpPassword true) }}
{{ include "preflight.env.secret" (list "PREFLIGHT_NOTIFIER_WEBHOOK_SECRETS" $secret $c.secretKeys.webhookSecrets true) }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Environment of a benchmark worker Job container (rendered into the Job template). Arg: root. */}}
{{- define "preflight.env.worker" -}}
{{- $ctx := dict "root" . "name" "worker" "c" .Values.benchmark -}}
{{ include "preflight.env.kafka" $ctx }}
{{ include "preflight.env.otel" $ctx }}
- name: PREFLIGHT_IDENTITY_TARGET
  value: {{ include "preflight.identityTarget" . | quote }}
{{ include "preflight.env.secret" (list "PREFLIGHT_SERVICE_TOKEN" (include "preflight.workerSecretName" .) .Values.benchmark.worker.secretKeys.serviceToken false) }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .Values.benchmark.worker.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
