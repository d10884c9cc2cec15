// Command kube is the cluster harness's Kubernetes: kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kubectl and etcd in one
// binary, so that the packages they share are compiled and linked once.
//
// It runs the component named by the name it was started as (a symbolic
// link such as kube-apiserver -> kube), or by its first argument:
//
//	kube kube-apiserver --etcd-servers=...
//	kube-apiserver --etcd-servers=...
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // for the time zones of CronJobs, as the upstream commands do

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // the JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go's metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // the version metric
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's auth plugins
)

// cobraMain runs a component's command with args, as its own main does.
func cobraMain(newCommand func() *cobra.Command) func(args []string) int {
	return func(args []string) int {
		command := newCommand()
		command.SetArgs(args)
		return cli.Run(command)
	}
}

var components = map[string]func(args []string) int{
	"kube-apiserver":          cobraMain(apiserver.NewAPIServerCommand),
	"kube-controller-manager": cobraMain(controllermanager.NewControllerManagerCommand),
	"kube-scheduler": cobraMain(func() *cobra.Command {
		return scheduler.NewSchedulerCommand()
	}),
	"kubelet": cobraMain(func() *cobra.Command {
		return kubelet.NewKubeletCommand(context.Background())
	}),
	"kubectl": func(args []string) int {
		logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) //nolint:errcheck
		command := kubectl.NewDefaultKubectlCommand()
		command.SetArgs(args)
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
		return 0
	},
	"etcd": func(args []string) int {
		etcdmain.Main(os.Args)
		return 0
	},
}

func names() string {
	var n []string
	for name := range components {
		n = append(n, name)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if _, ok := components[name]; !ok {
		if len(args) == 0 {
			fmt.Fprintf(os.Stderr, "usage: %s COMPONENT [FLAGS...], or run it as a link named after the component; components: %s\n", name, names())
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	run, ok := components[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: no component %q; components: %s\n", filepath.Base(os.Args[0]), name, names())
		os.Exit(2)
	}
	// Some components read os.Args themselves (kubectl looks for plugins
	// there): make it what their own command would have seen.
	os.Args = append([]string{name}, args...)
	os.Exit(run(args))
}
