{{/*
One node DaemonSet: csi-thin and its sidecars. Called with a dict:
  root         the chart's root context
  name         the DaemonSet's name
  group        its node group ("default" for the default DaemonSet)
  pool         the pool settings (values' pool, with the group's overrides)
  expressions  node affinity matchExpressions selecting its nodes (or empty)
Every container reaches the driver through one socket, /csi/csi.sock, on
the socket-dir volume; kubelet reaches it at <kubeletDir>/plugins/csi-thin.io/csi.sock.
*/}}
{{- define "csi-thin.daemonset" }}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $pool := .pool }}
{{- $socket := "/csi/csi.sock" }}
{{- $kubeletDir := include "csi-thin.kubeletDir" $root }}
{{- $stateDir := $values.stateDir | trimSuffix "/" }}
{{- $sidecars := $values.sidecars }}
{{- $listener := include "csi-thin.forwarder.enabled" $root }}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "csi-thin.labels" $root | nindent 4 }}
    app.kubernetes.io/component: node
    csi-thin.io/node-group: {{ .group }}
spec:
  selector:
    matchLabels:
      {{- include "csi-thin.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: node
      csi-thin.io/node-group: {{ .group }}
  updateStrategy:
    {{- toYaml $values.updateStrategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "csi-thin.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: node
        csi-thin.io/node-group: {{ .group }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "csi-thin.serviceAccountName" $root }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- with $values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .expressions }}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  {{- toYaml . | nindent 18 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        # The driver: identity, controller and node services for this node's
        # thin pool. Privileged: it creates device-mapper and loop devices,
        # formats and mounts filesystems, and its mounts must reach kubelet
        # and the pods (see the README).
        - name: csi-thin
          image: {{ include "csi-thin.image" (list $values.image $root.Chart.AppVersion) }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          command:
            - /usr/local/bin/csi-thin
          args:
            - "--endpoint=unix://{{ $socket }}"
            - "--node-id=$(NODE_NAME)"
            - "--state-dir={{ $stateDir }}"
            - "--pool-name={{ $pool.name }}"
            {{- if $pool.dataDevice }}
            {{- if $pool.maxSize }}
            {{- fail (printf "pool.maxSize %s applies to loopback pools; a pool on dataDevice %s takes the device's size: grow the device instead" $pool.maxSize $pool.dataDevice) }}
            {{- end }}
            - "--data-device={{ $pool.dataDevice }}"
            - "--metadata-device={{ $pool.metadataDevice }}"
            {{- else }}
            - "--pool-size={{ $pool.size }}"
            {{- if $pool.maxSize }}
            - "--pool-max-size={{ $pool.maxSize }}"
            - "--pool-grow-percent={{ $pool.growPercent }}"
            - "--pool-fs-reserve-percent={{ $pool.fsReservePercent }}"
            {{- end }}
            {{- end }}
            - "--block-size={{ $pool.blockSize }}"
            - "--overprovision-ratio={{ $pool.overprovisionRatio }}"
            - "--data-reserve-percent={{ $pool.dataReservePercent }}"
            - "--metadata-reserve-percent={{ $pool.metadataReservePercent }}"
            - "--error-if-no-space={{ $pool.errorIfNoSpace }}"
            - "--max-volumes={{ int64 $pool.maxVolumes }}"
            {{- if $values.metrics.enabled }}
            - "--metrics-address=:{{ $values.metrics.port }}"
            {{- end }}
            {{- if $listener }}
            # The forwarder's listener: SnapshotMetadata and the snapshot
            # calls it relays, with mutual TLS.
            - "--snapshot-metadata-address=:{{ $values.forwarder.nodePort }}"
            - "--snapshot-metadata-format={{ $values.snapshotMetadata.format }}"
            - "--snapshot-metadata-client-name={{ include "csi-thin.forwarder.clientName" $root }}"
            - "--snapshot-metadata-tls-cert=/etc/csi-thin/snapshot-metadata/tls.crt"
            - "--snapshot-metadata-tls-key=/etc/csi-thin/snapshot-metadata/tls.key"
            - "--snapshot-metadata-tls-ca=/etc/csi-thin/snapshot-metadata/ca.crt"
            {{- end }}
            - "--v={{ $values.logLevel }}"
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          securityContext:
            privileged: true
          ports:
            - name: healthz
              containerPort: {{ $sidecars.livenessProbe.healthPort }}
              protocol: TCP
            {{- if $values.metrics.enabled }}
            - name: metrics
              containerPort: {{ $values.metrics.port }}
              protocol: TCP
            {{- end }}
            {{- if $listener }}
            - name: snapshot-meta
              containerPort: {{ $values.forwarder.nodePort }}
              protocol: TCP
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: healthz
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 5
          {{- with $values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: socket-dir
              mountPath: /csi
            # Staging and publish targets are under the kubelet directory:
            # mounts made here must propagate back to the host.
            - name: kubelet-dir
              mountPath: {{ $kubeletDir }}
              mountPropagation: Bidirectional
            # Loop devices, /dev/mapper/control and the thin devices.
            - name: dev
              mountPath: /dev
            - name: state-dir
              mountPath: {{ $stateDir }}
            {{- if $listener }}
            - name: snapshot-metadata-tls
              mountPath: /etc/csi-thin/snapshot-metadata
              readOnly: true
            {{- end }}

        # Registers the driver's socket with kubelet. Its first call waits
        # for csi-thin as long as the other sidecars' calls may: with the
        # registrar's default of 1 s it exited, and its container restarted,
        # whenever a busy node answered the first GetPluginInfo later.
        - name: node-driver-registrar
          image: {{ include "csi-thin.image" (list $sidecars.nodeDriverRegistrar.image "") }}
          imagePullPolicy: {{ $sidecars.nodeDriverRegistrar.image.pullPolicy }}
          args:
            - "--csi-address={{ $socket }}"
            - "--kubelet-registration-path={{ include "csi-thin.socketDir" $root }}/csi.sock"
            - "--timeout={{ $sidecars.timeout }}"
            - "--http-endpoint=:{{ $sidecars.nodeDriverRegistrar.healthPort }}"
            - "--v={{ $sidecars.logLevel }}"
            {{- range $sidecars.nodeDriverRegistrar.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          ports:
            - name: registrar
              containerPort: {{ $sidecars.nodeDriverRegistrar.healthPort }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: registrar
            initialDelaySeconds: 5
            timeoutSeconds: 5
          {{- with $sidecars.nodeDriverRegistrar.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: socket-dir
              mountPath: /csi
            - name: registration-dir
              mountPath: /registration

        # Creates and deletes this node's volumes: each instance handles the
        # PVCs whose selected node is its own, and publishes this node's free
        # space as CSIStorageCapacity objects owned by the DaemonSet.
        - name: csi-provisioner
          image: {{ include "csi-thin.image" (list $sidecars.provisioner.image "") }}
          imagePullPolicy: {{ $sidecars.provisioner.image.pullPolicy }}
          args:
            - "--csi-address={{ $socket }}"
            - "--timeout={{ $sidecars.timeout }}"
            - "--leader-election=false"
            - "--node-deployment=true"
            - "--node-deployment-immediate-binding=false"
            - "--strict-topology=true"
            - "--immediate-topology=false"
            - "--extra-create-metadata=true"
            {{- if $values.capacity.enabled }}
            - "--enable-capacity=true"
            - "--capacity-ownerref-level=1"
            - "--capacity-poll-interval={{ $values.capacity.pollInterval }}"
            {{- end }}
            - "--v={{ $sidecars.logLevel }}"
            {{- range $sidecars.provisioner.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
          {{- with $sidecars.provisioner.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: socket-dir
              mountPath: /csi
        {{- /* With snapshots.placement cluster it runs beside the forwarder instead. */}}
        {{- if and $values.snapshots.enabled (eq $values.snapshots.placement "node") }}

        # Takes snapshots of this node's volumes: the snapshot-controller
        # labels each VolumeSnapshotContent with its volume's node.
        - name: csi-snapshotter
          image: {{ include "csi-thin.image" (list $sidecars.snapshotter.image "") }}
          imagePullPolicy: {{ $sidecars.snapshotter.image.pullPolicy }}
          args:
            - "--csi-address={{ $socket }}"
            - "--timeout={{ $sidecars.timeout }}"
            - "--leader-election=false"
            - "--node-deployment=true"
            - "--extra-create-metadata=true"
            - "--v={{ $sidecars.logLevel }}"
            {{- range $sidecars.snapshotter.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          {{- with $sidecars.snapshotter.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: socket-dir
              mountPath: /csi
        {{- end }}
        {{- if $values.expansion.enabled }}

        # Marks resized PVCs for node expansion. csi-thin has no controller
        # EXPAND_VOLUME, so the resizer makes no CSI call and any node's can
        # do it: leader election keeps one active in the cluster. Kubelet
        # then calls NodeExpandVolume on the volume's node.
        - name: csi-resizer
          image: {{ include "csi-thin.image" (list $sidecars.resizer.image "") }}
          imagePullPolicy: {{ $sidecars.resizer.image.pullPolicy }}
          args:
            - "--csi-address={{ $socket }}"
            - "--timeout={{ $sidecars.timeout }}"
            - "--leader-election=true"
            - "--leader-election-namespace=$(NAMESPACE)"
            - "--handle-volume-inuse-error=false"
            - "--v={{ $sidecars.logLevel }}"
            {{- range $sidecars.resizer.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
          {{- with $sidecars.resizer.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: socket-dir
              mountPath: /csi
        {{- end }}

        # Serves /healthz for the csi-thin container's liveness probe by
        # calling the driver's Probe, which answers while the plugin serves,
        # whatever the pool's state: a full or damaged pool never restarts it.
        - name: livenessprobe
          image: {{ include "csi-thin.image" (list $sidecars.livenessProbe.image "") }}
          imagePullPolicy: {{ $sidecars.livenessProbe.image.pullPolicy }}
          args:
            - "--csi-address={{ $socket }}"
            - "--http-endpoint=:{{ $sidecars.livenessProbe.healthPort }}"
            - "--probe-timeout=3s"
            - "--v={{ $sidecars.logLevel }}"
            {{- range $sidecars.livenessProbe.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          {{- with $sidecars.livenessProbe.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: socket-dir
              mountPath: /csi
      volumes:
        - name: socket-dir
          hostPath:
            path: {{ include "csi-thin.socketDir" $root }}
            type: DirectoryOrCreate
        - name: registration-dir
          hostPath:
            path: {{ $kubeletDir }}/plugins_registry
            type: Directory
        - name: kubelet-dir
          hostPath:
            path: {{ $kubeletDir }}
            type: Directory
        - name: dev
          hostPath:
            path: /dev
            type: Directory
        - name: state-dir
          hostPath:
            path: {{ $stateDir }}
            type: DirectoryOrCreate
        {{- if $listener }}
        - name: snapshot-metadata-tls
          secret:
            secretName: {{ include "csi-thin.forwarder.nodeSecret" $root }}
        {{- end }}
{{- end }}
