{{/* Names and labels. */}}
{{- define "trailhead.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trailhead.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "trailhead.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "trailhead.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "trailhead.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trailhead.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "trailhead.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "trailhead.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "trailhead.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trailhead.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The two-tier preset's sampling tier: its name (also its headless Service's). */}}
{{- define "trailhead.samplingName" -}}
{{- printf "%s-sampling" (include "trailhead.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trailhead.samplingSelectorLabels" -}}
app.kubernetes.io/name: {{ include "trailhead.name" . }}-sampling
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Whether the front Deployment has an HPA: asked for, or the two-tier preset. */}}
{{- define "trailhead.autoscaled" -}}
{{- if and (eq .Values.mode "deployment") (or .Values.autoscaling.enabled .Values.twoTier.enabled) }}true{{ end -}}
{{- end -}}

{{- define "trailhead.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "trailhead.pluginsConfigMap" -}}
{{- default (printf "%s-plugins" (include "trailhead.fullname" .)) .Values.plugins.configMap.name -}}
{{- end -}}

{{/*
The config the chart starts from: the original plan's gateway. OTLP and Zipkin in on every
interface, the presets' processors, OTLP/gRPC out to Alloy, health and metrics for the probes
and Prometheus.
*/}}
{{- define "trailhead.defaultConfig" -}}
{{- $processors := list -}}
{{- $limiter := .Values.presets.memoryLimiter -}}
{{- if $limiter.enabled }}{{ $processors = append $processors "memory_limiter" }}{{ end -}}
{{- $k8s := .Values.presets.kubernetesAttributes.enabled -}}
{{- if $k8s }}{{ $processors = append $processors "k8sattributes" }}{{ end -}}
{{- $traceProcessors := $processors -}}
{{- if .Values.presets.dropHealthChecks.enabled }}{{ $traceProcessors = append $traceProcessors "filter/health" }}{{ end -}}
{{- $rebalance := .Values.presets.rebalanceConnections }}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:{{ .Values.ports.otlp.containerPort }}
{{- if $rebalance.enabled }}
        keepalive:
          server_parameters:
            max_connection_idle: {{ $rebalance.maxConnectionIdle }}
            max_connection_age: {{ $rebalance.maxConnectionAge }}
            max_connection_age_grace: {{ $rebalance.maxConnectionAgeGrace }}
{{- end }}
      http:
        endpoint: 0.0.0.0:{{ index .Values.ports "otlp-http" "containerPort" }}
{{- if $rebalance.enabled }}
        max_connection_age: {{ $rebalance.maxConnectionAge }}
        max_connection_age_grace: {{ $rebalance.maxConnectionAgeGrace }}
{{- end }}
  zipkin:
    endpoint: 0.0.0.0:{{ .Values.ports.zipkin.containerPort }}
{{- if $rebalance.enabled }}
    max_connection_age: {{ $rebalance.maxConnectionAge }}
    max_connection_age_grace: {{ $rebalance.maxConnectionAgeGrace }}
{{- end }}
processors:
{{- if $limiter.enabled }}
  memory_limiter:
    check_interval: 1s
    limit_percentage: {{ $limiter.limitPercentage }}
    spike_limit_percentage: {{ $limiter.spikeLimitPercentage }}
{{- end }}
{{- if $k8s }}
  k8sattributes:
    auth_type: serviceAccount
    passthrough: false
{{- if eq .Values.mode "daemonset" }}
    filter:
      node_from_env_var: K8S_NODE_NAME
{{- end }}
    extract:
      metadata:
        - k8s.namespace.name
        - k8s.pod.name
        - k8s.pod.uid
        - k8s.pod.start_time
        - k8s.deployment.name
        - k8s.node.name
    pod_association:
      - sources: [{from: resource_attribute, name: k8s.pod.ip}]
      - sources: [{from: resource_attribute, name: k8s.pod.uid}]
      - sources: [{from: connection}]
{{- end }}
{{- if .Values.presets.dropHealthChecks.enabled }}
  filter/health:
    error_mode: ignore
    traces:
      span:
{{- range .Values.presets.dropHealthChecks.routes }}
        - {{ printf "attributes[\"http.route\"] == %q or attributes[\"url.path\"] == %q" . . | quote }}
{{- end }}
{{- end }}
{{- $queue := .Values.presets.persistentQueue }}
exporters:
{{- if .Values.twoTier.enabled }}
  # Every span of a trace to the same sampling-tier replica, found through the EndpointSlices
  # of its headless Service; each replica has its own queue and retry.
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls:
          insecure: true
        timeout: 5s
    resolver:
      k8s:
        service: {{ include "trailhead.samplingName" . }}.{{ .Release.Namespace }}
        ports: [4317]
{{- end }}
  otlp/alloy:
    endpoint: {{ .Values.alloy.endpoint }}
    tls:
      insecure: {{ .Values.alloy.insecure }}
{{- if $queue.enabled }}
    sending_queue:
      storage: file_storage/queue
      sizer: bytes
      queue_size: {{ div (mul $queue.sizeMiB 1048576 8) 10 }}
    # On disk, waiting costs nothing but disk: retry until Alloy is back, as the collector
    # does with 0. The queue's size bounds it; past that, senders are refused.
    retry_on_failure:
      max_elapsed_time: 0
{{- end }}
extensions:
  health_check:
    endpoint: 0.0.0.0:{{ .Values.health.port }}
{{- if $queue.enabled }}
  file_storage/queue:
    directory: /var/lib/trailhead/queue
    create_directory: true
{{- end }}
service:
  extensions: {{ if $queue.enabled }}[health_check, file_storage/queue]{{ else }}[health_check]{{ end }}
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: {{ $traceProcessors | toJson }}
      exporters: {{ if .Values.twoTier.enabled }}[loadbalancing]{{ else }}[otlp/alloy]{{ end }}
    metrics:
      receivers: [otlp]
      processors: {{ $processors | toJson }}
      exporters: [otlp/alloy]
    logs:
      receivers: [otlp]
      processors: {{ $processors | toJson }}
      exporters: [otlp/alloy]
  telemetry:
    logs:
      encoding: json
    metrics:
      address: 0.0.0.0:{{ .Values.ports.metrics.containerPort }}
{{- end -}}

{{/*
The two-tier preset's sampling tier: OTLP/gRPC in from the front tier (no age bound: the
front tier's balancer, not the Service, spreads the load), tail_sampling, OTLP/gRPC out to
Alloy, with the memory limiter and the persistent queue as the presets say.
*/}}
{{- define "trailhead.samplingDefaultConfig" -}}
{{- $limiter := .Values.presets.memoryLimiter -}}
{{- $queue := .Values.presets.persistentQueue -}}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
{{- if $limiter.enabled }}
  memory_limiter:
    check_interval: 1s
    limit_percentage: {{ $limiter.limitPercentage }}
    spike_limit_percentage: {{ $limiter.spikeLimitPercentage }}
{{- end }}
  tail_sampling:
    {{- toYaml .Values.twoTier.sampling.tailSampling | nindent 4 }}
exporters:
  otlp/alloy:
    endpoint: {{ .Values.alloy.endpoint }}
    tls:
      insecure: {{ .Values.alloy.insecure }}
{{- if $queue.enabled }}
    sending_queue:
      storage: file_storage/queue
      sizer: bytes
      queue_size: {{ div (mul $queue.sizeMiB 1048576 8) 10 }}
    retry_on_failure:
      max_elapsed_time: 0
{{- end }}
extensions:
  health_check:
    endpoint: 0.0.0.0:{{ .Values.health.port }}
{{- if $queue.enabled }}
  file_storage/queue:
    directory: /var/lib/trailhead/queue
    create_directory: true
{{- end }}
service:
  extensions: {{ if $queue.enabled }}[health_check, file_storage/queue]{{ else }}[health_check]{{ end }}
  pipelines:
    traces:
      receivers: [otlp]
      processors: {{ if $limiter.enabled }}[memory_limiter, tail_sampling]{{ else }}[tail_sampling]{{ end }}
      exporters: [otlp/alloy]
  telemetry:
    logs:
      encoding: json
    metrics:
      address: 0.0.0.0:{{ .Values.ports.metrics.containerPort }}
{{- end -}}

{{- define "trailhead.samplingConfig" -}}
{{- $default := include "trailhead.samplingDefaultConfig" . | fromYaml -}}
{{- $merged := mustMergeOverwrite $default (deepCopy .Values.twoTier.sampling.config) -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* The config trailhead runs: .Values.config deep-merged over the default. */}}
{{- define "trailhead.config" -}}
{{- $default := include "trailhead.defaultConfig" . | fromYaml -}}
{{- $merged := mustMergeOverwrite $default (deepCopy .Values.config) -}}
{{- toYaml $merged -}}
{{- end -}}

{{/*
The RBAC rules the config needs (DESIGN §5): pods for any k8sattributes processor;
namespaces or nodes only when their labels, annotations or uids are extracted; replicasets
only for k8s.deployment.uid (the deployment name comes from the ReplicaSet name itself).
*/}}
{{- define "trailhead.rbacRules" -}}
{{- $config := include "trailhead.config" . | fromYaml -}}
{{- $need := dict -}}
{{- range $id, $processor := ($config.processors | default dict) -}}
{{- if or (eq $id "k8sattributes") (hasPrefix "k8sattributes/" $id) -}}
{{- $_ := set $need "pods" true -}}
{{- $extract := (($processor | default dict).extract | default dict) -}}
{{- range (concat ($extract.labels | default list) ($extract.annotations | default list)) -}}
{{- if eq (.from | default "pod") "namespace" }}{{ $_ := set $need "namespaces" true }}{{ end -}}
{{- if eq (.from | default "pod") "node" }}{{ $_ := set $need "nodes" true }}{{ end -}}
{{- end -}}
{{- range ($extract.metadata | default list) -}}
{{- if eq . "k8s.namespace.uid" }}{{ $_ := set $need "namespaces" true }}{{ end -}}
{{- if eq . "k8s.node.uid" }}{{ $_ := set $need "nodes" true }}{{ end -}}
{{- if eq . "k8s.deployment.uid" }}{{ $_ := set $need "replicasets" true }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $need.pods }}
- apiGroups: [""]
  resources: {{ compact (list "pods" (ternary "namespaces" "" (hasKey $need "namespaces")) (ternary "nodes" "" (hasKey $need "nodes"))) | toJson }}
  verbs: [get, list, watch]
{{- end }}
{{- if $need.replicasets }}
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
{{- end }}
{{- end -}}
