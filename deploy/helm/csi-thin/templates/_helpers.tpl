{{/* The CSI driver name: must match pkg/volcap.DriverName. */}}
{{- define "csi-thin.driverName" -}}
csi-thin.io
{{- end }}

{{- define "csi-thin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "csi-thin.fullname" -}}
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

{{- define "csi-thin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "csi-thin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csi-thin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "csi-thin.labels" -}}
helm.sh/chart: {{ include "csi-thin.chart" . }}
{{ include "csi-thin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: csi-thin
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "csi-thin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-node" (include "csi-thin.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The kubelet's root directory, without a trailing slash. */}}
{{- define "csi-thin.kubeletDir" -}}
{{- .Values.kubeletDir | trimSuffix "/" }}
{{- end }}

{{/* The host directory of the driver's socket. */}}
{{- define "csi-thin.socketDir" -}}
{{- printf "%s/plugins/%s" (include "csi-thin.kubeletDir" .) (include "csi-thin.driverName" .) }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; the tag defaults to the
second argument. Call as (include "csi-thin.image" (list .image "default")).
*/}}
{{- define "csi-thin.image" -}}
{{- $img := index . 0 }}
{{- $defaultTag := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $defaultTag $img.tag) }}
{{- end }}
{{- end }}

{{/*
The node groups, checked: names unique and not "default" (the label value
of the default DaemonSet's pods), label values unique across groups.
*/}}
{{- define "csi-thin.checkNodeGroups" -}}
{{- $names := dict }}
{{- $values := dict }}
{{- range .Values.nodeGroups }}
{{- if eq .name "default" }}
{{- fail "nodeGroups: the name \"default\" is reserved for the default DaemonSet; choose another" }}
{{- end }}
{{- if hasKey $names .name }}
{{- fail (printf "nodeGroups: the name %q is used twice" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- $group := .name }}
{{- range (default (list .name) .labelValues) }}
{{- if hasKey $values . }}
{{- fail (printf "nodeGroups: the label value %q selects both group %q and group %q" . (get $values .) $group) }}
{{- end }}
{{- $_ := set $values . $group }}
{{- end }}
{{- end }}
{{- if and .Values.nodeGroupsOnly (not .Values.nodeGroups) }}
{{- fail "nodeGroupsOnly is true but nodeGroups is empty: csi-thin would run on no node" }}
{{- end }}
{{- end }}

{{/* Every label value of every node group, for the default DaemonSet's NotIn. */}}
{{- define "csi-thin.allGroupLabelValues" -}}
{{- $all := list }}
{{- range .Values.nodeGroups }}
{{- $all = concat $all (default (list .name) .labelValues) }}
{{- end }}
{{- toJson $all }}
{{- end }}

{{/* The pod's ports must differ: its containers share one network namespace. */}}
{{- define "csi-thin.checkPorts" -}}
{{- $ports := dict }}
{{- $_ := set $ports (toString .Values.sidecars.livenessProbe.healthPort) "sidecars.livenessProbe.healthPort" }}
{{- $registrar := toString .Values.sidecars.nodeDriverRegistrar.healthPort }}
{{- if hasKey $ports $registrar }}
{{- fail (printf "sidecars.nodeDriverRegistrar.healthPort %s is also %s" $registrar (get $ports $registrar)) }}
{{- end }}
{{- $_ := set $ports $registrar "sidecars.nodeDriverRegistrar.healthPort" }}
{{- if .Values.metrics.enabled }}
{{- $metrics := toString .Values.metrics.port }}
{{- if hasKey $ports $metrics }}
{{- fail (printf "metrics.port %s is also %s" $metrics (get $ports $metrics)) }}
{{- end }}
{{- $_ := set $ports $metrics "metrics.port" }}
{{- end }}
{{- if .Values.snapshotMetadata.enabled }}
{{- $sm := toString .Values.snapshotMetadata.nodePort }}
{{- if hasKey $ports $sm }}
{{- fail (printf "snapshotMetadata.nodePort %s is also %s" $sm (get $ports $sm)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The SnapshotMetadata objects' names: the forwarder's and the nodes'. */}}
{{- define "csi-thin.snapshotMetadata.name" -}}
{{- printf "%s-snapshot-metadata" (include "csi-thin.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "csi-thin.snapshotMetadata.nodesName" -}}
{{- printf "%s-snapshot-metadata-nodes" (include "csi-thin.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The DNS name of the nodes' headless Service, in the nodes' certificate. */}}
{{- define "csi-thin.snapshotMetadata.nodesHost" -}}
{{- printf "%s.%s.svc" (include "csi-thin.snapshotMetadata.nodesName" .) .Release.Namespace }}
{{- end }}

{{/* The Secrets of the forwarder's and the nodes' certificates. */}}
{{- define "csi-thin.snapshotMetadata.forwarderSecret" -}}
{{- if .Values.snapshotMetadata.tls.generate }}
{{- printf "%s-tls" (include "csi-thin.snapshotMetadata.name" .) }}
{{- else }}
{{- required "snapshotMetadata.tls.forwarderSecret is required when snapshotMetadata.tls.generate is false" .Values.snapshotMetadata.tls.forwarderSecret }}
{{- end }}
{{- end }}

{{- define "csi-thin.snapshotMetadata.nodeSecret" -}}
{{- if .Values.snapshotMetadata.tls.generate }}
{{- printf "%s-tls" (include "csi-thin.snapshotMetadata.nodesName" .) }}
{{- else }}
{{- required "snapshotMetadata.tls.nodeSecret is required when snapshotMetadata.tls.generate is false" .Values.snapshotMetadata.tls.nodeSecret }}
{{- end }}
{{- end }}

{{/* The name in the forwarder's client certificate: csi-thin's default --snapshot-metadata-client-name. */}}
{{- define "csi-thin.snapshotMetadata.clientName" -}}
csi-thin-snapshot-metadata-forwarder
{{- end }}
