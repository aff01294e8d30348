// Package kcidbcheck runs KernelCI's own KCIDB validator (kcidb-io,
// vendored in third_party/kcidb-io, on Debian's python3-jsonschema from
// make deps) on a file, for tests: yank's KCIDB output is checked by the
// schema's owners' code, not a copy of the schema.
package kcidbcheck

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoValidator: python3-jsonschema or the vendored package is missing.
var ErrNoValidator = errors.New("kcidb-io's validator cannot run (make deps installs python3-jsonschema)")

// Validate checks file against KCIDB I/O schema v5.3 exactly.
func Validate(file string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	// Debian's python3, where apt put jsonschema (not a pyenv shim).
	cmd := exec.Command("/usr/bin/python3", "-c", `import json, sys, kcidb_io
kcidb_io.schema.V5_3.validate_exactly(json.load(open(sys.argv[1])))`, file)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "third_party", "kcidb-io"))
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil && (strings.Contains(string(out), "ModuleNotFoundError") || errors.Is(err, exec.ErrNotFound)):
		return fmt.Errorf("%w: %s", ErrNoValidator, out)
	case err != nil:
		return fmt.Errorf("kcidb-io refused %s: %s", file, lastLine(string(out)))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kcidbcheck: not inside the yank module")
		}
		dir = parent
	}
}
