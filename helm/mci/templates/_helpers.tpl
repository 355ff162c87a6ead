{{/*
Names. The chart deploys three components: catalog, marketplace and template-reference. The
per-component templates take a context (dict "root" $ "component" "<component>").
*/}}

{{- define "mci.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "mci.fullname" -}}
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

{{- define "mci.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's resources: <fullname>-<component>; 63 characters at most (DNS-1035). */}}
{{- define "mci.componentFullname" -}}
{{- printf "%s-%s" (include "mci.fullname" .root | trunc 44 | trimSuffix "-") .component }}
{{- end }}

{{/* Key of a component's block in values.yaml. */}}
{{- define "mci.valuesKey" -}}
{{- $keys := dict "catalog" "catalog" "marketplace" "marketplace" "template-reference" "templateReference" }}
{{- required (printf "unknown component %q" .component) (get $keys .component) }}
{{- end }}

{{/* grpc.health.v1 service name a component reports. */}}
{{- define "mci.healthService" -}}
{{- $names := dict "catalog" "mci.catalog.v1.CatalogService" "marketplace" "mci.marketplace.v1.MarketplaceService" "template-reference" "mci.templates.v1.ServerTemplateService" }}
{{- required (printf "unknown component %q" .component) (get $names .component) }}
{{- end }}

{{/* In-cluster gRPC address (host:port) of a component. */}}
{{- define "mci.grpcAddress" -}}
{{- $v := index .root.Values (include "mci.valuesKey" .) }}
{{- printf "%s.%s.svc:%v" (include "mci.componentFullname" .) .root.Release.Namespace $v.grpcPort }}
{{- end }}

{{/* Labels. */}}
{{- define "mci.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mci.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mci.labels" -}}
helm.sh/chart: {{ include "mci.chart" . }}
{{ include "mci.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "mci.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mci.componentSelectorLabels" -}}
{{ include "mci.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mci.componentLabels" -}}
{{ include "mci.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mci.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "mci.componentFullname" . }}
{{- else }}
{{- default "default" .root.Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: [registry/]repository(@digest|:tag). */}}
{{- define "mci.image" -}}
{{- $v := index .root.Values (include "mci.valuesKey" .) }}
{{- $repo := $v.image.repository }}
{{- with .root.Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- if $v.image.digest }}
{{- printf "%s@%s" $repo $v.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion (default .root.Values.image.tag $v.image.tag)) }}
{{- end }}
{{- end }}

{{/* Secret holding the database URLs and the JWT secret. */}}
{{- define "mci.secretName" -}}
{{- default (include "mci.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Key of a component's database URL in that Secret. */}}
{{- define "mci.databaseUrlKey" -}}
{{- $key := printf "%sDatabaseUrl" (include "mci.valuesKey" .) }}
{{- required (printf "secretKeys.%s is required" $key) (get .root.Values.secretKeys $key) }}
{{- end }}

{{/* The JWT secret: the value given, else the one already in the cluster, else a new random one. */}}
{{- define "mci.jwtSecret" -}}
{{- if .Values.jwtSecret }}
{{- .Values.jwtSecret }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "mci.fullname" .) }}
{{- $data := dig "data" (dict) ($existing | default dict) }}
{{- $old := get $data .Values.secretKeys.jwtSecret }}
{{- if $old }}
{{- b64dec $old }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}
