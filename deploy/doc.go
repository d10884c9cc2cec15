// Package deploy holds csi-thin's deployment: the Helm chart in
// helm/csi-thin, the same manifests rendered for kubectl in kubernetes/,
// and the tests that check them. The tests need no cluster: they run helm
// lint and helm template on the chart (with the helm binary in $HELM, in
// the repository's bin/, which `make test-chart` installs, or in PATH),
// decode every rendered object strictly into its Kubernetes API type, and
// check what the driver and its sidecars need: the privileged driver
// container, mount propagation, the host paths, one socket for every
// container, each sidecar's flags and RBAC rules, and that the committed
// manifests match the chart.
package deploy
