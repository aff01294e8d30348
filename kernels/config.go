package kernels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ConfigOption is one line of a config fragment: Value is "y", "m", a
// number or a quoted string, or "" for "# CONFIG_X is not set".
type ConfigOption struct {
	Name  string // with the CONFIG_ prefix
	Value string
}

func (o ConfigOption) String() string {
	if o.Value == "" {
		return "# " + o.Name + " is not set"
	}
	return o.Name + "=" + o.Value
}

var (
	setRe   = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.*)$`)
	unsetRe = regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
)

// ParseConfig reads .config or fragment syntax; other comments and blank
// lines are ignored. A later line for the same option wins.
func ParseConfig(data []byte) ([]ConfigOption, error) {
	var out []ConfigOption
	idx := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		var o ConfigOption
		if m := setRe.FindStringSubmatch(line); m != nil {
			o = ConfigOption{Name: m[1], Value: m[2]}
			if o.Value == "" {
				return nil, fmt.Errorf("config line %d: %s has an empty value", n, o.Name)
			}
		} else if m := unsetRe.FindStringSubmatch(line); m != nil {
			o = ConfigOption{Name: m[1]}
		} else if line == "" || strings.HasPrefix(line, "#") {
			continue
		} else {
			return nil, fmt.Errorf("config line %d: not a config option: %q", n, line)
		}
		if i, ok := idx[o.Name]; ok {
			out[i] = o
			continue
		}
		idx[o.Name] = len(out)
		out = append(out, o)
	}
	return out, sc.Err()
}

// MergeConfig returns base with every option of the fragment overriding the
// base's line for that option (like scripts/kconfig/merge_config.sh -m).
// The result still needs `make olddefconfig` to resolve dependencies.
func MergeConfig(base, fragment []byte) ([]byte, error) {
	frag, err := ParseConfig(fragment)
	if err != nil {
		return nil, fmt.Errorf("fragment: %w", err)
	}
	override := map[string]bool{}
	for _, o := range frag {
		override[o.Name] = true
	}
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(base))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		if m := setRe.FindStringSubmatch(t); m != nil && override[m[1]] {
			continue
		}
		if m := unsetRe.FindStringSubmatch(t); m != nil && override[m[1]] {
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	buf.WriteString("# yank fragment\n")
	for _, o := range frag {
		buf.WriteString(o.String())
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// MissingOptions returns the fragment options whose value did not survive
// into the final .config (Kconfig drops options whose dependencies are not
// met without telling anyone). "is not set" options must be unset or absent.
func MissingOptions(finalConfig, fragment []byte) ([]ConfigOption, error) {
	frag, err := ParseConfig(fragment)
	if err != nil {
		return nil, fmt.Errorf("fragment: %w", err)
	}
	final, err := ParseConfig(finalConfig)
	if err != nil {
		return nil, fmt.Errorf(".config: %w", err)
	}
	have := map[string]string{}
	for _, o := range final {
		have[o.Name] = o.Value
	}
	var missing []ConfigOption
	for _, o := range frag {
		if have[o.Name] != o.Value {
			missing = append(missing, o)
		}
	}
	return missing, nil
}

// MissingOptionsError lists options the final config lacks.
type MissingOptionsError struct {
	Missing []ConfigOption
	Have    map[string]string
}

func (e *MissingOptionsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel config: %d required option(s) not set after olddefconfig (unmet dependencies?):", len(e.Missing))
	for _, o := range e.Missing {
		got := e.Have[o.Name]
		if got == "" {
			got = "unset"
		}
		fmt.Fprintf(&b, "\n  want %s, have %s", o, got)
	}
	return b.String()
}

// verifyConfig returns a *MissingOptionsError when options are missing.
func verifyConfig(finalConfig, fragment []byte) error {
	missing, err := MissingOptions(finalConfig, fragment)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	final, _ := ParseConfig(finalConfig)
	have := map[string]string{}
	for _, o := range final {
		have[o.Name] = o.Value
	}
	return &MissingOptionsError{Missing: missing, Have: have}
}

func (b *builder) configure(ctx context.Context) error {
	cfg := filepath.Join(b.obj, ".config")
	if b.baseEntry == "" {
		if err := run(ctx, "", b.makeEnv(), b.log, "make", b.makeArgs("tinyconfig")...); err != nil {
			return fmt.Errorf("make tinyconfig: %w", err)
		}
		base, err := os.ReadFile(cfg)
		if err != nil {
			return err
		}
		merged, err := MergeConfig(base, Fragment())
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg, merged, 0o644); err != nil {
			return err
		}
	}
	// Also run for incremental builds: a patch may add Kconfig symbols.
	if err := run(ctx, "", b.makeEnv(), b.log, "make", b.makeArgs("olddefconfig")...); err != nil {
		return fmt.Errorf("make olddefconfig: %w", err)
	}
	final, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	return verifyConfig(final, Fragment())
}
