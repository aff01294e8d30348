// Package ci holds the CI examples (ci/examples/); this test keeps them
// honest: they parse as YAML, and every command they run is one that
// `make nightly-local SHARDS=2` runs on one machine.
package ci

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// commands lists the shell commands of a GitHub Actions workflow (steps'
// run) or a GitLab pipeline (jobs' script).
func commands(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: not YAML: %v", file, err)
	}
	var out []string
	if jobs, ok := doc["jobs"].(map[string]any); ok { // GitHub Actions
		for _, j := range jobs {
			for _, s := range j.(map[string]any)["steps"].([]any) {
				if run, ok := s.(map[string]any)["run"].(string); ok {
					out = append(out, run)
				}
			}
		}
	}
	for _, v := range doc { // GitLab: every job's script
		if job, ok := v.(map[string]any); ok {
			if script, ok := job["script"].([]any); ok {
				for _, c := range script {
					out = append(out, c.(string))
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s runs no commands", file)
	}
	return out
}

// dryRun is what make would run for args, one command per line.
func dryRun(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-n", "--no-print-directory", "-C", "..", "NIGHTLY_OUT=artifacts/nightly-dry"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %v: %v\n%s", args, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestExamplesRunWhatNightlyLocalRuns(t *testing.T) {
	local := map[string]bool{}
	for _, l := range dryRun(t, "nightly-local", "SHARDS=2") {
		local[strings.TrimSpace(l)] = true
	}
	for _, file := range []string{"examples/github-actions.yml", "examples/gitlab-ci.yml"} {
		for _, c := range commands(t, file) {
			c = strings.NewReplacer("${{ matrix.shard }}", "1/2", "$SHARD", "2/2").Replace(c)
			f := strings.Fields(c)
			if len(f) < 2 || f[0] != "make" {
				t.Errorf("%s runs %q: the examples run make targets only, so nightly-local can run the same", file, c)
				continue
			}
			if f[1] == "deps" {
				continue // nightly-local depends on deps too
			}
			for _, l := range dryRun(t, f[1:]...) {
				if !local[strings.TrimSpace(l)] {
					t.Errorf("%s: %q runs %q, which make nightly-local SHARDS=2 does not", file, c, l)
				}
			}
		}
	}
}
