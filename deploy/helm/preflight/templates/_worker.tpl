{{/*
The Job the benchmark dispatcher creates for each benchmark job. It is
rendered into the benchmark ConfigMap (worker-job.yaml); the dispatcher
fills in metadata.name (or generateName), the container args and its own
labels/annotations (submission and suite ids), and creates it in
metadata.namespace. Arg: root.
*/}}
{{- define "preflight.workerJob" -}}
{{- $w := .Values.benchmark.worker -}}
{{- $labels := include "preflight.labels" (dict "root" . "name" "benchmark-worker") | fromYaml -}}
{{- if $w.kueue.enabled -}}
{{- $_ := set $labels "kueue.x-k8s.io/queue-name" $w.kueue.queueName -}}
{{- end -}}
{{- $labels = merge $labels ($w.labels | default dict) -}}
{{- /* Quantities as strings: strict clients (kubernetes>=37) refuse numbers. */ -}}
{{- $resources := dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- $q := dict -}}
{{- range $k, $v := (index ($w.resources | default dict) $kind | default dict) -}}
{{- $_ := set $q $k (toString $v) -}}
{{- end -}}
{{- if gt (int $w.gpu.count) 0 -}}
{{- $_ := set $q $w.gpu.resourceName (toString (int $w.gpu.count)) -}}
{{- end -}}
{{- if $q -}}
{{- $_ := set $resources $kind $q -}}
{{- end -}}
{{- end -}}
apiVersion: batch/v1
kind: Job
metadata:
  generateName: {{ include "preflight.fullname" . }}-worker-
  namespace: {{ include "preflight.jobNamespace" . }}
  labels:
    {{- toYaml $labels | nindent 4 }}
spec:
  backoffLimit: {{ $w.backoffLimit }}
  activeDeadlineSeconds: {{ $w.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ $w.ttlSecondsAfterFinished }}
  {{- if $w.kueue.enabled }}
  suspend: true
  {{- end }}
  template:
    metadata:
      labels:
        {{- toYaml $labels | nindent 8 }}
      {{- with $w.annotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "preflight.workerServiceAccountName" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "preflight.podSecurityContext" . | nindent 8 }}
      {{- with .Values.image.pullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      {{- with $w.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      containers:
        - name: worker
          image: {{ include "preflight.image" (dict "root" . "image" $w.image) }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          env:
            {{- include "preflight.env.worker" . | nindent 12 }}
          securityContext:
            {{- include "preflight.containerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .Values.kafka.tls.caSecret.name }}
            - name: kafka-ca
              mountPath: /etc/preflight/kafka-ca
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $w.tmpSizeLimit }}
        {{- if .Values.kafka.tls.caSecret.name }}
        - name: kafka-ca
          secret:
            secretName: {{ .Values.kafka.tls.caSecret.name }}
            items:
              - key: {{ .Values.kafka.tls.caSecret.key }}
                path: ca.crt
        {{- end }}
      {{- with $w.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
