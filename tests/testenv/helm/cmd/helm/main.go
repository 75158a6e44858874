// Command helm is the upstream Helm v4 CLI (helm.sh/helm/v4/pkg/cmd), built from its Go module.
// It lives in its own module because Helm pins newer k8s.io/* releases than k8s.io/kubernetes v1.35.
package main

import (
	"errors"
	"os"

	helmcmd "helm.sh/helm/v4/pkg/cmd"
	"helm.sh/helm/v4/pkg/kube"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubeconfig auth plugins, as upstream
)

func main() {
	// Field manager name recorded in managedFields, independent of the binary's file name.
	kube.ManagedFieldsManager = "helm"
	cmd, err := helmcmd.NewRootCmd(os.Stdout, os.Args[1:], helmcmd.SetupLogging)
	if err != nil {
		os.Stderr.WriteString("helm: " + err.Error() + "\n")
		os.Exit(1)
	}
	if err := cmd.Execute(); err != nil {
		var cerr helmcmd.CommandError
		if errors.As(err, &cerr) {
			os.Exit(cerr.ExitCode)
		}
		os.Exit(1)
	}
}
