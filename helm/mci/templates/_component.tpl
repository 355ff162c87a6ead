{{/*
The resources of one component (catalog, marketplace or template-reference). Each is emitted by
its own file under templates/<component>/, with the context (dict "root" $ "component" "<name>").
*/}}

{{- define "mci.configMap" -}}
{{- $v := index .root.Values (include "mci.valuesKey" .) }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "mci.componentFullname" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
data:
  MCI_GRPC_ADDRESS: {{ printf "0.0.0.0:%v" $v.grpcPort | quote }}
  MCI_HTTP_ADDRESS: {{ printf "0.0.0.0:%v" $v.httpPort | quote }}
  MCI_NATS_URL: {{ .root.Values.nats.url | quote }}
  {{- with .root.Values.nats.caFile }}
  MCI_NATS_CA_FILE: {{ . | quote }}
  {{- end }}
  MCI_LOG_LEVEL: {{ .root.Values.logLevel | quote }}
  MCI_DB_POOL_SIZE: {{ .root.Values.dbPoolSize | toString | quote }}
  {{- if eq .component "catalog" }}
  MCI_TEMPLATES_ADDRESS: {{ include "mci.grpcAddress" (dict "root" .root "component" "template-reference") | quote }}
  {{- if $v.inventory.configMapName }}
  MCI_INVENTORY_FILE: {{ printf "/etc/mci/inventory/%s" $v.inventory.key | quote }}
  {{- else }}
  MCI_INVENTORY_FILE: "/etc/mci/inventory.json"
  {{- end }}
  {{- else }}
  MCI_CATALOG_ADDRESS: {{ include "mci.grpcAddress" (dict "root" .root "component" "catalog") | quote }}
  {{- end }}
{{- end }}

{{- define "mci.deployment" -}}
{{- $ctx := . }}
{{- $root := .root }}
{{- $v := index $root.Values (include "mci.valuesKey" .) }}
{{- $selector := fromYaml (include "mci.componentSelectorLabels" .) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mci.componentFullname" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "mci.componentSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include "mci.configMap" . | sha256sum }}
        {{- if not $root.Values.existingSecret }}
        checksum/secret: {{ toJson (list $root.Values.jwtSecret $v.databaseUrl) | sha256sum }}
        {{- end }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "mci.componentLabels" . | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "mci.serviceAccountName" . }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "mci.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - name: grpc
              containerPort: {{ $v.grpcPort }}
              protocol: TCP
            - name: http-metrics
              containerPort: {{ $v.httpPort }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "mci.componentFullname" . }}
          env:
            - name: MCI_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ include "mci.secretName" $root }}
                  key: {{ include "mci.databaseUrlKey" . }}
            - name: MCI_JWT_SECRET
              valueFrom:
                secretKeyRef:
                  name: {{ include "mci.secretName" $root }}
                  key: {{ $root.Values.secretKeys.jwtSecret }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # grpc.health.v1: "liveness" (SERVING while the process runs) for startup and liveness,
          # the service's own name for readiness (SERVING only while its database and NATS are
          # reachable), so an outage of a dependency takes pods out of rotation without restarts.
          startupProbe:
            grpc:
              port: {{ $v.grpcPort }}
              service: liveness
            periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.startup.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
          livenessProbe:
            grpc:
              port: {{ $v.grpcPort }}
              service: liveness
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
          readinessProbe:
            grpc:
              port: {{ $v.grpcPort }}
              service: {{ include "mci.healthService" . }}
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
            successThreshold: {{ $root.Values.probes.readiness.successThreshold }}
          {{- if gt (int $root.Values.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ int $root.Values.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if or $root.Values.tls.caSecretName $root.Values.tls.caConfigMapName }}
            - name: tls-ca
              mountPath: /etc/mci/tls
              readOnly: true
            {{- end }}
            {{- if and (eq .component "catalog") $v.inventory.configMapName }}
            - name: inventory
              mountPath: /etc/mci/inventory
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
        {{- if $root.Values.tls.caSecretName }}
        - name: tls-ca
          secret:
            secretName: {{ $root.Values.tls.caSecretName }}
        {{- else if $root.Values.tls.caConfigMapName }}
        - name: tls-ca
          configMap:
            name: {{ $root.Values.tls.caConfigMapName }}
        {{- end }}
        {{- if and (eq .component "catalog") $v.inventory.configMapName }}
        - name: inventory
          configMap:
            name: {{ $v.inventory.configMapName }}
            items:
              - key: {{ $v.inventory.key }}
                path: {{ $v.inventory.key }}
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        {{- $c := deepCopy . }}
        {{- if not $c.labelSelector }}
        {{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
        {{- end }}
        - {{ toYaml $c | nindent 10 | trim }}
        {{- end }}
      {{- end }}
{{- end }}

{{- define "mci.service" -}}
{{- $v := index .root.Values (include "mci.valuesKey" .) }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "mci.componentFullname" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
  {{- with .root.Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .root.Values.service.type }}
  selector:
    {{- include "mci.componentSelectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: http-metrics
      port: {{ $v.httpPort }}
      targetPort: http-metrics
      protocol: TCP
      appProtocol: http
{{- end }}

{{- define "mci.serviceAccount" -}}
{{- if .root.Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "mci.serviceAccountName" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
  {{- with .root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
{{- end }}
{{- end }}

{{- define "mci.podDisruptionBudget" -}}
{{- $pdb := .root.Values.podDisruptionBudget }}
{{- if $pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "mci.componentFullname" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
spec:
  {{- if or $pdb.minAvailable (eq (toString $pdb.minAvailable) "0") }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "mci.componentSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "mci.horizontalPodAutoscaler" -}}
{{- $v := index .root.Values (include "mci.valuesKey" .) }}
{{- $hpa := $v.autoscaling }}
{{- if $hpa.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "mci.componentFullname" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "mci.componentFullname" . }}
  minReplicas: {{ $hpa.minReplicas }}
  maxReplicas: {{ $hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $hpa.targetCPUUtilizationPercentage }}
    {{- if $hpa.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ $hpa.targetMemoryUtilizationPercentage }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "mci.networkPolicy" -}}
{{- $v := index .root.Values (include "mci.valuesKey" .) }}
{{- $np := .root.Values.networkPolicy }}
{{- if $np.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "mci.componentFullname" . }}
  labels:
    {{- include "mci.componentLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "mci.componentSelectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
  ingress:
    # gRPC from the chart's own services and the named namespaces.
    - from:
        - podSelector:
            matchLabels:
              {{- include "mci.selectorLabels" .root | nindent 14 }}
        {{- range $np.allowedNamespaces }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ . }}
        {{- end }}
      ports:
        - port: {{ $v.grpcPort }}
          protocol: TCP
    {{- with $np.metricsNamespaces }}
    # Prometheus metrics from the monitoring namespaces.
    - from:
        {{- range . }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ . }}
        {{- end }}
      ports:
        - port: {{ $v.httpPort }}
          protocol: TCP
    {{- end }}
{{- end }}
{{- end }}
