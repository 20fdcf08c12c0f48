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
{{- $registry := (.root.Values.global | default dict).imageRegistry | default .root.Values.image.registry | trimSuffix "/" -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" $registry $repo -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Names of the image pull Secrets, comma-separated: global.imagePullSecrets (names or {name})
then image.pullSecrets, each once. Arg: root. */}}
{{- define "preflight.pullSecretNames" -}}
{{- $names := list -}}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.image.pullSecrets | default list) -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- $names | uniq | join "," -}}
{{- end -}}

{{/* Whether eval logs go to an object store (s3://, gs://): "true" or "". Arg: root. */}}
{{- define "preflight.evalLogsInObjectStore" -}}
{{- if regexMatch "^(s3|gs)://[^/]+" .Values.benchmark.evalLogs.root -}}true{{- end -}}
{{- end -}}

{{/* Secret of a component. Arg: (dict "root" $ "name" <component> "c" <values>). */}}
{{- define "preflight.secretName" -}}
{{- .c.existingSecret | default (include "preflight.componentName" .) -}}
{{- end -}}

{{/*
The secrets a service reads, as JSON {VARIABLE: key in its Secret}: each reaches the service as
the file /etc/preflight/secrets/<key>, named by VARIABLE_FILE (a secret is never an environment
variable: the services refuse VARIABLE itself). An empty key is an optional secret left unset.
Arg: (dict "root" $ "name" <component> "c" <component values>).
*/}}
{{- define "preflight.secretFiles" -}}
{{- $k := .c.secretKeys -}}
{{- $files := dict "PREFLIGHT_DATABASE_URL" $k.databaseUrl "PREFLIGHT_PAGE_TOKEN_KEY" $k.pageTokenKey -}}
{{- if eq .name "intake" -}}
{{- $_ := set $files "PREFLIGHT_INTAKE_ENCRYPTION_KEYS" $k.encryptionKeys -}}
{{- else -}}
{{- $_ := set $files "PREFLIGHT_SERVICE_TOKEN" $k.serviceToken -}}
{{- end -}}
{{- if eq .name "clearinghouse" -}}
{{- $_ := set $files "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY" $k.signingKey -}}
{{- else if eq .name "notifier" -}}
{{- $_ := set $files "PREFLIGHT_NOTIFIER_SMTP_PASSWORD" $k.smtpPassword -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/*
The service's Secret mounted read-only (mode 0440: the pod's fsGroup reads it) at
/etc/preflight/secrets: the keys of preflight.secretFiles, and the notifier's webhook secrets
(the routing file names them in `secret_file`). Arg: as preflight.secretFiles.
*/}}
{{- define "preflight.secretsVolume" -}}
{{- $keys := values (include "preflight.secretFiles" . | fromJson) -}}
{{- if eq .name "notifier" }}{{ $keys = concat $keys (.c.webhookSecrets | default list) }}{{ end -}}
- name: secrets
  secret:
    secretName: {{ include "preflight.secretName" . }}
    defaultMode: 0440
    items:
      {{- range $keys | compact | uniq | sortAlpha }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end -}}

{{- define "preflight.secretsVolumeMount" -}}
- name: secrets
  mountPath: /etc/preflight/secrets
  readOnly: true
{{- end -}}

{{- define "preflight.jobNamespace" -}}
{{- .Values.benchmark.jobNamespace | default .Release.Namespace -}}
{{- end -}}

{{/* Namespace of Inspect's Kubernetes sandbox Pods. Arg: root. */}}
{{- define "preflight.k8sSandboxNamespace" -}}
{{- .Values.benchmark.worker.k8sSandbox.namespace | default (printf "%s-sandbox" (include "preflight.fullname" .)) -}}
{{- end -}}

{{/* The ConfigMap (job namespace) of the Helm values of Inspect's Kubernetes sandbox. Arg: root. */}}
{{- define "preflight.k8sSandboxValues" -}}
{{- printf "%s-k8s-sandbox" (include "preflight.fullname" .) -}}
{{- end -}}

{{/* The ServiceAccount a service's pods run as: its own (created unless serviceAccount.create is
false) or the one named. Arg: (dict "root" $ "name" <component> "c" <component values>). */}}
{{- define "preflight.serviceAccountName" -}}
{{- if dig "serviceAccount" "create" true .c -}}
{{- dig "serviceAccount" "name" "" .c | default (include "preflight.componentName" .) -}}
{{- else -}}
{{- dig "serviceAccount" "name" "" .c | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Lease (in the job namespace) held by the one benchmark replica that creates worker Jobs. */}}
{{- define "preflight.dispatcherLease" -}}
{{- printf "%s-benchmark-dispatcher" (include "preflight.fullname" .) -}}
{{- end -}}

{{- define "preflight.workerServiceAccountName" -}}
{{- printf "%s-worker" (include "preflight.fullname" .) -}}
{{- end -}}

{{/* The ConfigMap holding intake's OpenID Connect mapping (under `intake.oidc.key`): the existing one
named, the chart's when the issuers are given inline, else none (empty: no sign-in through a provider). */}}
{{- define "preflight.intakeOidcConfigMap" -}}
{{- $o := .Values.intake.oidc -}}
{{- if $o.existingConfigMap -}}
{{ $o.existingConfigMap }}
{{- else if $o.issuers -}}
{{ include "preflight.componentName" (dict "root" . "name" "intake") }}-oidc
{{- end -}}
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

{{/*
Where a principal's Kafka password is: {"name": <Secret>, "key": <key>} as JSON.
Arg: (dict "root" $ "user" <principal> "override" <passwordSecret values or nil>).
*/}}
{{- define "preflight.kafkaPasswordRef" -}}
{{- $shared := .root.Values.kafka.auth.existingSecret -}}
{{- $o := .override | default dict -}}
{{- $fromShared := and (not $o.name) (ne $shared "") -}}
{{- $key := $o.key | default (ternary (printf "%s.password" .user) "password" $fromShared) -}}
{{- dict "name" ($o.name | default $shared | default .user) "key" $key | toJson -}}
{{- end -}}

{{/*
The Kafka client a context connects as, as JSON {username, mechanism, name, key, certificate}
(name/key: the password's Secret; certificate: the Secret of its client certificate and key,
used instead with securityProtocol SSL): a service's own principal, or the cluster
administrator for the provisioning Job ("topics"). Arg: (dict "root" $ "name" <component> "c" <values>).
*/}}
{{- define "preflight.kafkaClient" -}}
{{- $k := .root.Values.kafka -}}
{{- if eq .name "topics" -}}
{{- $a := $k.provisioning.admin -}}
{{- $name := $a.passwordSecret.name | default (printf "%s-kafka-admin" (include "preflight.fullname" .root)) -}}
{{- $certificate := $a.certificateSecret.name | default (printf "%s-kafka-admin" (include "preflight.fullname" .root)) -}}
{{- dict "username" $a.username "mechanism" ($a.mechanism | default $k.sasl.mechanism) "name" $name "key" $a.passwordSecret.key "certificate" $certificate | toJson -}}
{{- else -}}
{{- $user := .c.kafkaCredentials.username -}}
{{- $ref := include "preflight.kafkaPasswordRef" (dict "root" .root "user" $user "override" .c.kafkaCredentials.passwordSecret) | fromJson -}}
{{- dict "username" $user "mechanism" $k.sasl.mechanism "name" $ref.name "key" $ref.key "certificate" (.c.kafkaCredentials.certificateSecret.name | default $user) | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The context's Kafka credential, mounted as files: its password (PREFLIGHT_KAFKA_SASL_PASSWORD_FILE)
or, with securityProtocol SSL, its client certificate and key (PREFLIGHT_KAFKA_SSL_CERTFILE,
PREFLIGHT_KAFKA_SSL_KEYFILE). Arg: as preflight.kafkaClient.
*/}}
{{- define "preflight.kafkaCredentialsVolume" -}}
{{- $client := include "preflight.kafkaClient" . | fromJson -}}
{{- if eq .root.Values.kafka.securityProtocol "SSL" -}}
{{- $keys := .root.Values.kafka.tls.clientCertificate -}}
- name: kafka-tls
  secret:
    secretName: {{ $client.certificate }}
    defaultMode: 0440
    items:
      - key: {{ $keys.certificateKey }}
        path: tls.crt
      - key: {{ $keys.privateKeyKey }}
        path: tls.key
{{- else -}}
- name: kafka-sasl
  secret:
    secretName: {{ $client.name }}
    defaultMode: 0440
    items:
      - key: {{ $client.key }}
        path: password
{{- end -}}
{{- end -}}

{{/* Where preflight.kafkaCredentialsVolume is mounted. Arg: as preflight.kafkaClient. */}}
{{- define "preflight.kafkaCredentialsVolumeMount" -}}
{{- if eq .root.Values.kafka.securityProtocol "SSL" -}}
- name: kafka-tls
  mountPath: /etc/preflight/kafka-tls
  readOnly: true
{{- else -}}
- name: kafka-sasl
  mountPath: /etc/preflight/kafka-sasl
  readOnly: true
{{- end -}}
{{- end -}}

{{/* The participants file (preflight_common.bus.Participants). Arg: root. */}}
{{- define "preflight.participantsFile" -}}
{{- toYaml (dict "organisations" .Values.participants) -}}
{{- end -}}

{{/*
A Strimzi KafkaUser authenticating with SCRAM-SHA-512: its password is the one in
.password ({name, key}), or generated by Strimzi into the Secret named after the user when
that is where .password points. With .tls it authenticates with a client certificate
instead, which Strimzi issues into the Secret named after the user. Arg: (dict "root" $ "ctx" <label context> "ns" <namespace>
"user" <principal> "password" <ref> "acls" <Strimzi ACL rules> "tls" <bool>).
*/}}
{{- define "preflight.kafkaUser" }}
apiVersion: kafka.strimzi.io/v1
kind: KafkaUser
metadata:
  name: {{ .user }}
  namespace: {{ .ns }}
  labels:
    {{- include "preflight.labels" .ctx | nindent 4 }}
    strimzi.io/cluster: {{ .root.Values.kafka.strimzi.cluster }}
spec:
  authentication:
    {{- if .tls }}
    type: tls
    {{- else }}
    type: scram-sha-512
    {{- end }}
    {{- if and (not .tls) (not (and (eq .password.name .user) (eq .password.key "password"))) }}
    password:
      valueFrom:
        secretKeyRef:
          name: {{ .password.name }}
          key: {{ .password.key }}
    {{- end }}
  authorization:
    type: simple
    acls:
      {{- toYaml .acls | nindent 6 }}
  {{- with .root.Values.kafka.strimzi.userSecretAnnotations }}
  template:
    secret:
      metadata:
        annotations:
          {{- toYaml . | nindent 10 }}
  {{- end }}
{{- end -}}

{{/* Whether the chart applies the bus's ACLs (Strimzi KafkaUsers or the provisioning Job): "true" or "". */}}
{{- define "preflight.managesAcls" -}}
{{- if or .Values.kafka.strimzi.enabled .Values.kafka.provisioning.enabled -}}true{{- end -}}
{{- end -}}

{{/* Checks that fail rendering for combinations the schema cannot express. */}}
{{- define "preflight.validate" -}}
{{- $v := .Values -}}
{{- $root := . -}}
{{- $principals := list -}}
{{- range $n := splitList " " (include "preflight.components" .) -}}
{{- $principals = append $principals (printf "preflight-%s" $n) -}}
{{- $c := index $v $n -}}
{{- if and $c.enabled (include "preflight.managesAcls" $root) (ne $c.kafkaCredentials.username (printf "preflight-%s" $n)) -}}
{{- fail (printf "%s.kafkaCredentials.username must be preflight-%s while the chart applies the bus's ACLs (they name that principal)" $n $n) -}}
{{- end -}}
{{- end -}}
{{- $orgs := list -}}
{{- range $v.participants -}}
{{- if has .name $orgs -}}
{{- fail (printf "participants: organisation %s is registered twice" .name) -}}
{{- end -}}
{{- $orgs = append $orgs .name -}}
{{- $principals = append $principals (printf "operator-%s" .name) -}}
{{- end -}}
{{- if and $v.kafka.provisioning.credentials (not $v.kafka.auth.existingSecret) -}}
{{- fail "kafka.provisioning.credentials needs kafka.auth.existingSecret (the Secret holding <principal>.password for every principal)" -}}
{{- end -}}
{{- if $v.kafka.strimzi.enabled -}}
{{- if eq ($v.kafka.strimzi.namespace | default .Release.Namespace) .Release.Namespace -}}
{{- range $n := splitList " " (include "preflight.components" .) -}}
{{- $c := index $v $n -}}
{{- $secret := include "preflight.secretName" (dict "root" $root "name" $n "c" $c) -}}
{{- if and $c.enabled (has $secret $principals) -}}
{{- fail (printf "%s's Secret %s is also the password Secret Strimzi writes for KafkaUser %s, and Strimzi would replace its keys: set %s.existingSecret to another name" $n $secret $secret $n) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $field, $topic := $v.kafka.topics.names -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" $topic) -}}
{{- fail (printf "kafka.topics.names.%s: %s cannot name a KafkaTopic (lowercase letters, digits, '-' and '.')" $field $topic) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.telemetry.serviceMonitor.enabled (not $v.telemetry.metrics.enabled) -}}
{{- fail "telemetry.serviceMonitor.enabled needs telemetry.metrics.enabled" -}}
{{- end -}}
{{- if and $v.benchmark.enabled (eq $v.benchmark.executor "kubernetes") -}}
{{- $logs := $v.benchmark.evalLogs -}}
{{- if $logs.persistentVolumeClaim -}}
{{- if not (hasPrefix "/" $logs.root) -}}
{{- fail "benchmark.evalLogs.root must be the absolute path at which benchmark.evalLogs.persistentVolumeClaim is mounted in the worker Jobs (e.g. /eval-logs)" -}}
{{- end -}}
{{- else if not (include "preflight.evalLogsInObjectStore" $root) -}}
{{- fail "benchmark.evalLogs.root is required with the kubernetes executor: an s3:// or gs:// URL, or the mount path of benchmark.evalLogs.persistentVolumeClaim (worker pods have a read-only root file system, and their disk goes with them)" -}}
{{- end -}}
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
