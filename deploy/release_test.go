package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The platforms the release builds the image for.
const imagePlatforms = "linux/amd64,linux/arm64"

type workflow struct {
	Env  map[string]string `json:"env"`
	Jobs map[string]struct {
		Steps []struct {
			Name string         `json:"name"`
			Uses string         `json:"uses"`
			With map[string]any `json:"with"`
		} `json:"steps"`
	} `json:"jobs"`
}

func readWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../.github/workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	var wf workflow
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return wf
}

// imageBuilds returns the docker/build-push-action steps of a workflow.
func imageBuilds(wf workflow) []map[string]any {
	var with []map[string]any
	for _, j := range wf.Jobs {
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, "docker/build-push-action@") {
				with = append(with, s.With)
			}
		}
	}
	return with
}

// TestReleasePushesTheChartsImage checks that the release workflow pushes
// the image the chart asks for: values.yaml's repository (and the
// Makefile's default for make image), at the version the workflow takes
// from the tag and requires Chart.yaml's appVersion to be, for every
// platform, from a Dockerfile that cross-compiles for each; and that CI
// builds the same platforms without pushing.
func TestReleasePushesTheChartsImage(t *testing.T) {
	b, err := os.ReadFile("helm/csi-thin/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
		} `json:"image"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	repo := values.Image.Repository

	release := readWorkflow(t, "release.yml")
	if release.Env["IMAGE"] != repo {
		t.Errorf("release.yml pushes env.IMAGE %q, but the chart's image.repository is %q: make them one", release.Env["IMAGE"], repo)
	}
	builds := imageBuilds(release)
	if len(builds) != 1 {
		t.Fatalf("release.yml has %d docker/build-push-action steps, want 1", len(builds))
	}
	if got := builds[0]["platforms"]; got != imagePlatforms {
		t.Errorf("release.yml builds platforms %v, want %s", got, imagePlatforms)
	}
	if got := builds[0]["push"]; got != true {
		t.Errorf("release.yml's image build has push: %v, want true", got)
	}
	if got, want := builds[0]["tags"], "${{ env.IMAGE }}:${{ steps.version.outputs.version }}"; got != want {
		t.Errorf("release.yml tags the image %v, want %s: the tag the chart asks for is its appVersion, the git tag without its v", got, want)
	}

	ci := imageBuilds(readWorkflow(t, "ci.yml"))
	if len(ci) != 1 || ci[0]["platforms"] != imagePlatforms || ci[0]["push"] != false {
		t.Errorf("ci.yml's image builds are %v, want one of platforms %s with push: false", ci, imagePlatforms)
	}

	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	if m := regexp.MustCompile(`(?m)^IMAGE\s*\?=\s*(\S+)\s*$`).FindSubmatch(mk); m != nil {
		got = string(m[1])
	}
	if got != repo {
		t.Errorf("the Makefile's default IMAGE is %q, want the chart's image.repository %q", got, repo)
	}

	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// Go compiles on the builder's platform, for the target's: fast,
		// and no QEMU for the build.
		"FROM --platform=$BUILDPLATFORM golang:", "ARG TARGETARCH", "GOARCH=${TARGETARCH}", "GOOS=${TARGETOS}", "CGO_ENABLED=0",
	} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile does not say %q: it must cross-compile for each of %s", want, imagePlatforms)
		}
	}
}

// TestWorkflowActionsArePinned checks that every action the workflows use
// is pinned to a commit, which a moved tag cannot change.
func TestWorkflowActionsArePinned(t *testing.T) {
	files, err := filepath.Glob("../.github/workflows/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no workflows in .github/workflows")
	}
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	for _, f := range files {
		wf := readWorkflow(t, filepath.Base(f))
		for job, j := range wf.Jobs {
			for _, s := range j.Steps {
				if s.Uses != "" && !pinned.MatchString(s.Uses) {
					t.Errorf("%s, job %s: uses %s: pin it to a commit (owner/repo@<40 hex digits> # vX.Y.Z)", filepath.Base(f), job, s.Uses)
				}
			}
		}
	}
}
