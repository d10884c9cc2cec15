package deploy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// TestPortNames checks what the API server checks and helm does not: a
// container port's name, and a Service's named target port, are IANA
// service names (at most 15 characters), and a Service's named target port
// is a port of the pods it selects.
func TestPortNames(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, _ valueSet, _ expectation, objs []object) {
		type pods struct {
			owner  string
			labels map[string]string
			ports  map[string]bool
		}
		var all []pods
		add := func(owner string, tpl corev1.PodTemplateSpec) {
			p := pods{owner: owner, labels: tpl.Labels, ports: map[string]bool{}}
			for _, c := range tpl.Spec.Containers {
				for _, port := range c.Ports {
					if port.Name == "" {
						continue
					}
					for _, msg := range validation.IsValidPortName(port.Name) {
						t.Errorf("%s container %s: port name %q: %s", owner, c.Name, port.Name, msg)
					}
					p.ports[port.Name] = true
				}
			}
			all = append(all, p)
		}
		for _, ds := range ofKind[appsv1.DaemonSet](objs) {
			add("DaemonSet "+ds.Name, ds.Spec.Template)
		}
		for _, d := range ofKind[appsv1.Deployment](objs) {
			add("Deployment "+d.Name, d.Spec.Template)
		}
		for _, svc := range ofKind[corev1.Service](objs) {
			sel := labels.SelectorFromSet(svc.Spec.Selector)
			for _, port := range svc.Spec.Ports {
				if port.TargetPort.Type != intstr.String {
					continue
				}
				name := port.TargetPort.StrVal
				for _, msg := range validation.IsValidPortName(name) {
					t.Errorf("Service %s: target port %q: %s", svc.Name, name, msg)
				}
				selected := 0
				for _, p := range all {
					if !sel.Matches(labels.Set(p.labels)) {
						continue
					}
					selected++
					if !p.ports[name] {
						t.Errorf("Service %s: target port %q is not a port of %s, which it selects", svc.Name, name, p.owner)
					}
				}
				if selected == 0 {
					t.Errorf("Service %s selects no pods of the chart", svc.Name)
				}
			}
		}
	})
}
