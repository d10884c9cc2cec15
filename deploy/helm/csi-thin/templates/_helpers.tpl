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
{{- if include "csi-thin.forwarder.enabled" . }}
{{- $listener := toString .Values.forwarder.nodePort }}
{{- if hasKey $ports $listener }}
{{- fail (printf "forwarder.nodePort %s is also %s" $listener (get $ports $listener)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when csi-snapshotter runs once in the cluster, beside the forwarder (snapshots.placement cluster). */}}
{{- define "csi-thin.snapshotsInCluster" -}}
{{- if and .Values.snapshots.enabled (eq .Values.snapshots.placement "cluster") }}true{{ end }}
{{- end }}

{{/* "true" when the forwarder runs, and so the nodes' listener: for the cluster's csi-snapshotter, SnapshotMetadata, or both. */}}
{{- define "csi-thin.forwarder.enabled" -}}
{{- if or .Values.snapshotMetadata.enabled (include "csi-thin.snapshotsInCluster" .) }}true{{ end }}
{{- end }}

{{/* What the forwarder serves (its --forward). */}}
{{- define "csi-thin.forwarder.serves" -}}
{{- $serves := list }}
{{- if include "csi-thin.snapshotsInCluster" . }}
{{- $serves = append $serves "snapshots" }}
{{- end }}
{{- if .Values.snapshotMetadata.enabled }}
{{- $serves = append $serves "snapshot-metadata" }}
{{- end }}
{{- join "," $serves }}
{{- end }}

{{/* The forwarder's Deployment and ServiceAccount. */}}
{{- define "csi-thin.forwarder.name" -}}
{{- printf "%s-forwarder" (include "csi-thin.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The SnapshotMetadata sidecar's Service and RBAC, and the nodes' headless
Service. The names are those of the first feature the forwarder served;
the certificates carry them, so they stay.
*/}}
{{- define "csi-thin.snapshotMetadata.name" -}}
{{- printf "%s-snapshot-metadata" (include "csi-thin.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "csi-thin.forwarder.nodesName" -}}
{{- printf "%s-snapshot-metadata-nodes" (include "csi-thin.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The DNS name of the nodes' headless Service, in the nodes' certificate. */}}
{{- define "csi-thin.forwarder.nodesHost" -}}
{{- printf "%s.%s.svc" (include "csi-thin.forwarder.nodesName" .) .Release.Namespace }}
{{- end }}

{{/* The Secrets of the forwarder's and the nodes' certificates. */}}
{{- define "csi-thin.forwarder.secret" -}}
{{- if .Values.forwarder.tls.generate }}
{{- printf "%s-tls" (include "csi-thin.snapshotMetadata.name" .) }}
{{- else }}
{{- required "forwarder.tls.forwarderSecret is required when forwarder.tls.generate is false" .Values.forwarder.tls.forwarderSecret }}
{{- end }}
{{- end }}

{{- define "csi-thin.forwarder.nodeSecret" -}}
{{- if .Values.forwarder.tls.generate }}
{{- printf "%s-tls" (include "csi-thin.forwarder.nodesName" .) }}
{{- else }}
{{- required "forwarder.tls.nodeSecret is required when forwarder.tls.generate is false" .Values.forwarder.tls.nodeSecret }}
{{- end }}
{{- end }}

{{/* The name in the forwarder's client certificate: csi-thin's default --snapshot-metadata-client-name. */}}
{{- define "csi-thin.forwarder.clientName" -}}
csi-thin-snapshot-metadata-forwarder
{{- end }}
