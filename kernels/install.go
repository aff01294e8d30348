package kernels

// The install stage: the artifacts and meta.json renamed into place as a
// cache entry, and reading an entry back.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Meta is written to <entry>/meta.json.
type Meta struct {
	Variant        string            `json:"variant"`
	Key            string            `json:"key"`
	Source         string            `json:"source"`
	Patches        []MetaPatch       `json:"patches"`
	Compiler       string            `json:"compiler"`
	Recipe         string            `json:"recipe"`
	Release        string            `json:"release"`
	ConfigSHA256   string            `json:"config_sha256"`
	BuiltFrom      string            `json:"built_from,omitempty"` // base key for incremental builds
	Incremental    bool              `json:"incremental"`
	MakeLines      int               `json:"make_lines"` // progress lines seen, the next build's estimate
	DisconnectHook bool              `json:"disconnect_hook"`
	Timings        map[string]string `json:"timings"` // stage -> duration
	TotalSeconds   float64           `json:"total_seconds"`
	Jobs           int               `json:"jobs"`
	Created        time.Time         `json:"created"`
}

// MetaPatch records one applied patch.
type MetaPatch struct {
	Variant string `json:"variant"`
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
}

func readMeta(entry string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(entry, "meta.json"))
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

func (b *builder) install(ctx context.Context) error {
	var rel strings.Builder
	if err := run(ctx, "", b.makeEnv(), &rel, "make", b.makeArgs("-s", "kernelrelease")...); err != nil {
		return fmt.Errorf("make kernelrelease: %w", err)
	}
	release := strings.TrimSpace(lastLines(rel.String(), 1))
	for _, c := range []struct{ from, to string }{
		{filepath.Join(b.obj, "arch/x86/boot/bzImage"), "bzImage"},
		{filepath.Join(b.obj, "vmlinux"), "vmlinux"},
		{filepath.Join(b.obj, ".config"), ".config"},
	} {
		if err := copyFile(c.from, filepath.Join(b.tmp, c.to)); err != nil {
			return err
		}
	}
	hook, err := HasDisconnectHook(filepath.Join(b.tmp, "vmlinux"))
	if err != nil {
		return fmt.Errorf("checking vmlinux: %w", err)
	}
	cfg, _ := os.ReadFile(filepath.Join(b.tmp, ".config"))
	if b.tree != "" && b.src != b.tree {
		// A patched copy of a tree is a one-off: keep only the artifacts.
		if err := os.RemoveAll(b.src); err != nil {
			return err
		}
	}
	m := Meta{
		Variant: b.variant, Key: b.key, Source: b.sourceID, Compiler: b.compiler,
		Recipe: RecipeVersion, Release: release, ConfigSHA256: sha256Hex(cfg),
		Incremental: b.baseEntry != "", MakeLines: b.makeLines, DisconnectHook: hook,
		Jobs: b.opts.Jobs, Created: time.Now().UTC(), Timings: map[string]string{},
	}
	if m.Jobs <= 0 {
		m.Jobs = runtime.NumCPU()
	}
	if b.baseEntry != "" {
		m.BuiltFrom = filepath.Base(b.baseEntry)
	}
	for _, p := range b.patches {
		m.Patches = append(m.Patches, MetaPatch{Variant: p.Variant, Name: p.Name, SHA256: p.SHA256()})
	}
	for k, v := range b.timings {
		m.Timings[k] = roundDur(v).String()
	}
	// This stage is still running: count it up to now.
	m.Timings["install"] = roundDur(time.Since(b.start) - sumDur(b.timings)).String()
	m.TotalSeconds = time.Since(b.start).Seconds()
	if err := writeJSON(filepath.Join(b.tmp, "meta.json"), m); err != nil {
		return err
	}
	b.log.Sync()
	// The atomic step: a complete entry appears, or none.
	if err := os.Rename(b.tmp, b.entryDir()); err != nil {
		return fmt.Errorf("installing entry: %w", err)
	}
	b.progressf("%s: done in %s: %s", b.variant, roundDur(time.Since(b.start)), filepath.Join(b.entryDir(), "bzImage"))
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func artifactFromEntry(entry string) (Artifact, bool) {
	m, err := readMeta(entry)
	if err != nil || !exists(filepath.Join(entry, "bzImage")) {
		return Artifact{}, false
	}
	a := Artifact{
		Variant:        m.Variant,
		Key:            m.Key,
		BzImage:        filepath.Join(entry, "bzImage"),
		Vmlinux:        filepath.Join(entry, "vmlinux"),
		Config:         filepath.Join(entry, ".config"),
		BuildLog:       filepath.Join(entry, "build.log"),
		Release:        m.Release,
		Dir:            entry,
		Cached:         true,
		DisconnectHook: m.DisconnectHook,
		BuiltFrom:      m.BuiltFrom,
		Timings:        map[string]time.Duration{},
	}
	for k, v := range m.Timings {
		if d, err := time.ParseDuration(v); err == nil {
			a.Timings[k] = d
		}
	}
	return a, true
}
