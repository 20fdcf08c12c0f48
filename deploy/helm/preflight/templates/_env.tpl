{{/*
The ONE place where values become environment variables. The services read
all their configuration from these variables (see each service's config.py /
README); when a variable is renamed in a service, change it here only.

  preflight.env.kafka    Kafka connection as the context's principal + topic names (services, topics Job)
  preflight.env.topics   topic sizing and the participants file (topics Job)
  preflight.env.otel     OpenTelemetry
  preflight.env.service  everything a long-running service gets (by component)

Arg of each: (dict "root" $ "name" <component> "c" <component values>).
*/}}

{{- define "preflight.env.kafka" -}}
{{- $k := .root.Values.kafka -}}
{{- $client := include "preflight.kafkaClient" . | fromJson -}}
- name: PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: PREFLIGHT_KAFKA_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if eq $k.securityProtocol "SSL" }}
- name: PREFLIGHT_KAFKA_SSL_CERTFILE
  value: /etc/preflight/kafka-tls/tls.crt
- name: PREFLIGHT_KAFKA_SSL_KEYFILE
  value: /etc/preflight/kafka-tls/tls.key
{{- else }}
- name: PREFLIGHT_KAFKA_SASL_MECHANISM
  value: {{ $client.mechanism | quote }}
- name: PREFLIGHT_KAFKA_SASL_USERNAME
  value: {{ $client.username | quote }}
- name: PREFLIGHT_KAFKA_SASL_PASSWORD_FILE
  value: /etc/preflight/kafka-sasl/password
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
- name: PREFLIGHT_TOPIC_ALERTS_PREFIX
  value: {{ $k.topics.names.alertsPrefix | quote }}
- name: PREFLIGHT_TOPIC_REVIEW_ALERTS
  value: {{ $k.topics.names.reviewAlerts | quote }}
- name: PREFLIGHT_TOPIC_AUDIT_CHECKPOINTS
  value: {{ $k.topics.names.auditCheckpoints | quote }}
{{- end -}}

{{- define "preflight.env.topics" -}}
{{- $t := .root.Values.kafka.topics -}}
- name: PREFLIGHT_TOPIC_PARTITIONS
  value: {{ $t.partitions | quote }}
- name: PREFLIGHT_TOPIC_REPLICATION
  value: {{ $t.replicationFactor | quote }}
- name: PREFLIGHT_TOPIC_RETENTION_MS
  value: {{ $t.retentionMs | int64 | quote }}
- name: PREFLIGHT_DLQ_RETENTION_MS
  value: {{ $t.deadLetterRetentionMs | int64 | quote }}
- name: PREFLIGHT_PARTICIPANTS_FILE
  value: /etc/preflight/participants/participants.yaml
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
{{- end }}
{{- if and $t.metrics.enabled (ne .name "topics") }}
- name: OTEL_METRICS_EXPORTER
  value: prometheus
- name: OTEL_EXPORTER_PROMETHEUS_HOST
  value: "0.0.0.0"
- name: OTEL_EXPORTER_PROMETHEUS_PORT
  value: {{ $t.metrics.port | quote }}
{{- end }}
{{- end -}}


{{/* A plain env var, omitted when the value is empty. Arg: (list NAME VALUE). */}}
{{- define "preflight.env.optional" -}}
{{- if index . 1 }}
- name: {{ index . 0 }}
  value: {{ index . 1 | toString | quote }}
{{- end }}
{{- end -}}

{{- define "preflight.env.service" -}}
{{- $root := .root -}}
{{- $c := .c -}}
- name: PREFLIGHT_GRPC_LISTEN
  value: {{ printf "0.0.0.0:%d" (int $c.grpcPort) | quote }}
{{- /* Secrets: files of the secrets volume (preflight.secretsVolume), never environment variables. */}}
{{- range $variable, $key := include "preflight.secretFiles" . | fromJson }}
{{- if $key }}
- name: {{ $variable }}_FILE
  value: {{ printf "/etc/preflight/secrets/%s" $key | quote }}
{{- end }}
{{- end }}
{{ include "preflight.env.kafka" . }}
{{ include "preflight.env.otel" . }}
{{- if ne .name "intake" }}
- name: PREFLIGHT_IDENTITY_TARGET
  value: {{ include "preflight.identityTarget" $root | quote }}
{{- end }}
{{- if eq .name "intake" }}
{{- /* Where intake fetches the key that review reports must verify with. */}}
- name: PREFLIGHT_CLEARINGHOUSE_TARGET
  value: {{ printf "%s.%s.svc:%d" (include "preflight.componentName" (dict "root" $root "name" "clearinghouse")) $root.Release.Namespace (int $root.Values.clearinghouse.grpcPort) | quote }}
{{- else if eq .name "clearinghouse" }}
- name: PREFLIGHT_CLEARINGHOUSE_STATE_DIR
  value: /var/lib/preflight
{{- include "preflight.env.optional" (list "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_ID" $c.signingKeyId) }}
{{- include "preflight.env.optional" (list "PREFLIGHT_CLEARINGHOUSE_PUBLISHER_NAME" $c.publisher.name) }}
{{- include "preflight.env.optional" (list "PREFLIGHT_CLEARINGHOUSE_PUBLISHER_NAMESPACE" $c.publisher.namespace) }}
- name: PREFLIGHT_CLEARINGHOUSE_POLICY_FILE
  value: /etc/preflight/config/policy.yaml
- name: PREFLIGHT_PARTICIPANTS_FILE
  value: /etc/preflight/config/participants.yaml
{{- else if eq .name "benchmark" }}
{{- $w := $c.worker }}
- name: PREFLIGHT_BENCHMARK_CATALOG_FILE
  value: /etc/preflight/config/catalog.yaml
- name: PREFLIGHT_BENCHMARK_EXECUTOR
  value: {{ $c.executor | quote }}
- name: PREFLIGHT_BENCHMARK_MAX_CONCURRENCY
  value: {{ $c.maxConcurrency | quote }}
- name: PREFLIGHT_BENCHMARK_MAX_ATTEMPTS
  value: {{ $c.maxAttempts | quote }}
- name: PREFLIGHT_BENCHMARK_LOG_ROOT
  value: {{ $c.evalLogs.root | default "/var/lib/preflight/eval-logs" | quote }}
- name: PREFLIGHT_BENCHMARK_WORK_DIR
  value: /var/lib/preflight/work
{{- /* Where workers reach intake (credentials) and this service (results): FQDNs, as workers may run in another namespace. */}}
- name: PREFLIGHT_INTAKE_TARGET
  value: {{ include "preflight.identityTarget" $root | quote }}
- name: PREFLIGHT_BENCHMARK_TARGET
  value: {{ printf "%s.%s.svc:%d" (include "preflight.componentName" .) $root.Release.Namespace (int $c.grpcPort) | quote }}
{{- if eq $c.executor "kubernetes" }}
- name: PREFLIGHT_BENCHMARK_K8S_NAMESPACE
  value: {{ include "preflight.jobNamespace" $root | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_IMAGE
  value: {{ include "preflight.image" (dict "root" $root "image" $w.image) | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_SERVICE_ACCOUNT
  value: {{ include "preflight.workerServiceAccountName" $root | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_INSTANCE
  value: {{ $root.Release.Name | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_LEASE
  value: {{ include "preflight.dispatcherLease" $root | quote }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_IMAGE_PULL_SECRETS" (include "preflight.pullSecretNames" $root)) }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM" $c.evalLogs.persistentVolumeClaim) }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_SECRET" $c.evalLogs.existingSecret) }}
{{- with $c.evalLogs.env }}
- name: PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_ENV
  value: {{ toJson . | quote }}
{{- end }}
- name: PREFLIGHT_BENCHMARK_K8S_SCRATCH_SIZE
  value: {{ $w.scratchSizeLimit | quote }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_RUNTIME_CLASS" $w.runtimeClassName) }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_PRIORITY_CLASS" $w.priorityClassName) }}
- name: PREFLIGHT_BENCHMARK_K8S_NODE_SELECTOR
  value: {{ $w.nodeSelector | default dict | toJson | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_TOLERATIONS
  value: {{ $w.tolerations | default list | toJson | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_GPU_NODE_SELECTOR
  value: {{ $w.gpuNodeSelector | default dict | toJson | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_GPU_TOLERATIONS
  value: {{ $w.gpuTolerations | default list | toJson | quote }}
{{- with $c.accelerators }}
- name: PREFLIGHT_BENCHMARK_K8S_ACCELERATORS
  value: {{ toJson . | quote }}
{{- end }}
- name: PREFLIGHT_BENCHMARK_K8S_POD_ANNOTATIONS
  value: {{ $w.podAnnotations | default dict | toJson | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_BACKOFF_LIMIT
  value: {{ $w.backoffLimit | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_TTL_SECONDS
  value: {{ $w.ttlSecondsAfterFinished | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_WEIGHTS_GPUS
  value: {{ $w.weights.gpus | quote }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_VLLM_IMAGE" $w.weights.vllmImage) }}
- name: PREFLIGHT_BENCHMARK_K8S_WEIGHTS_STORAGE
  value: {{ $w.weights.storage | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SHM
  value: {{ $w.weights.shmSize | quote }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_CLAIM" $w.weights.mirrorClaim) }}
{{- include "preflight.env.optional" (list "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SECRET" $w.weights.existingSecret) }}
- name: PREFLIGHT_BENCHMARK_K8S_WEIGHTS_ENV
  value: {{ $w.weights.env | default dict | toJson | quote }}
{{- if $w.k8sSandbox.enabled }}
- name: PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE
  value: {{ include "preflight.k8sSandboxNamespace" $root | quote }}
- name: PREFLIGHT_BENCHMARK_K8S_SANDBOX_VALUES
  value: {{ include "preflight.k8sSandboxValues" $root | quote }}
{{- end }}
{{- if $w.kueue.enabled }}
- name: PREFLIGHT_BENCHMARK_K8S_KUEUE_QUEUE
  value: {{ $w.kueue.queueName | quote }}
{{- end }}
{{- end }}
{{- else if eq .name "notifier" }}
- name: PREFLIGHT_PARTICIPANTS_FILE
  value: /etc/preflight/config/participants.yaml
- name: PREFLIGHT_NOTIFIER_ROUTING_FILE
  value: /etc/preflight/config/routing.yaml
- name: PREFLIGHT_NOTIFIER_SMTP_HOST
  value: {{ $c.smtp.host | quote }}
- name: PREFLIGHT_NOTIFIER_SMTP_PORT
  value: {{ $c.smtp.port | quote }}
- name: PREFLIGHT_NOTIFIER_SMTP_SECURITY
  value: {{ $c.smtp.security | quote }}
- name: PREFLIGHT_NOTIFIER_SMTP_FROM
  value: {{ $c.smtp.from | quote }}
{{- include "preflight.env.optional" (list "PREFLIGHT_NOTIFIER_SMTP_USERNAME" $c.smtp.username) }}
{{- end }}
{{- with $root.Values.grpcTls.existingSecret }}
{{- $prefix := printf "PREFLIGHT_%s_TLS" ($.name | upper) }}
- name: {{ $prefix }}_CERT
  value: /etc/preflight/grpc-tls/tls.crt
- name: {{ $prefix }}_KEY
  value: /etc/preflight/grpc-tls/tls.key
- name: {{ $prefix }}_HEALTH_LISTEN
  value: {{ printf "0.0.0.0:%d" (int $root.Values.grpcTls.healthPort) | quote }}
- name: PREFLIGHT_GRPC_TLS_CA
  value: /etc/preflight/grpc-tls/ca.crt
{{- if and (eq $.name "benchmark") (eq $c.executor "kubernetes") }}
- name: PREFLIGHT_BENCHMARK_K8S_GRPC_CA_SECRET
  value: {{ printf "%s:ca.crt" . | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
