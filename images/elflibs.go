package images

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// libDirs are the host directories searched for a DT_NEEDED library, in
// the order Debian's x86-64 loader uses.
var libDirs = []string{
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/lib64",
}

// guestLibDir is where every library goes in the guest: the first directory
// of the loader's built-in search path, so no ld.so.cache is needed.
const guestLibDir = "/lib/x86_64-linux-gnu"

// addBinary adds the host executable src at guest path dst, plus its ELF
// interpreter and, recursively, every DT_NEEDED library. Statically linked
// binaries (busybox-static) add nothing else. DT_RUNPATH is not honoured:
// Debian binaries do not use it.
func (t *tree) addBinary(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	if err := t.file(dst, st.Mode().Perm()|0o111, data, src); err != nil {
		return err
	}
	return t.addLibsOf(src, data, map[string]bool{})
}

func (t *tree) addLibsOf(src string, data []byte, seen map[string]bool) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("images: %s is not an ELF file: %w", src, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("images: %s is %v, not x86-64", src, f.Machine)
	}
	if interp := interpreter(f); interp != "" && !seen[interp] {
		seen[interp] = true
		// The interpreter is a host symlink (/lib64/ld-linux-x86-64.so.2 ->
		// /lib/x86_64-linux-gnu/...); the guest gets the real file at the
		// path the binary asks for.
		idata, err := os.ReadFile(interp)
		if err != nil {
			return fmt.Errorf("images: %s needs its interpreter %s: %w (install libc6)", src, interp, err)
		}
		if err := t.file(interp, 0o755, idata, interp); err != nil {
			return err
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("images: reading DT_NEEDED of %s: %w", src, err)
	}
	for _, lib := range needed {
		if seen[lib] {
			continue
		}
		seen[lib] = true
		guest, ldata, err := findLib(lib)
		if err != nil {
			return fmt.Errorf("images: %s needs %s: %w", src, lib, err)
		}
		if err := t.file(guest, 0o644, ldata, guest); err != nil {
			return err
		}
		if err := t.addLibsOf(guest, ldata, seen); err != nil {
			return err
		}
	}
	return nil
}

// interpreter returns the PT_INTERP path, or "" for a static binary.
func interpreter(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return ""
		}
		return strings.TrimRight(string(b), "\x00")
	}
	return ""
}

// findLib looks lib up in libDirs and returns its guest path and contents
// (following host symlinks such as libudev.so.1 -> libudev.so.1.7.5). Files
// that are not x86-64 ELF objects are skipped, as the loader would.
func findLib(lib string) (string, []byte, error) {
	if strings.Contains(lib, "/") {
		data, err := os.ReadFile(lib)
		return lib, data, err
	}
	for _, dir := range libDirs {
		p := path.Join(dir, lib)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			continue
		}
		ok := f.Machine == elf.EM_X86_64 && f.Class == elf.ELFCLASS64
		f.Close()
		if ok {
			return path.Join(guestLibDir, lib), data, nil
		}
	}
	return "", nil, fmt.Errorf("library not found in %s; install the package that ships it (apt-file search %s)",
		strings.Join(libDirs, ", "), lib)
}
