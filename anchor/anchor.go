// Package anchor names the guest event an anchored cut waits for and
// finds it in a kernel: "SYMBOL", "SYMBOL+0xOFF", either with "@N" for
// the N-th hit after the trigger starts (Parse), resolved to a kernel
// virtual address from the build's System.map, or its vmlinux when no
// System.map lies beside the bzImage (Lookup). yank's guests boot with
// nokaslr, so the link-time address is the run-time one.
package anchor

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Anchor is a parsed anchor spec.
type Anchor struct {
	Symbol string
	Offset uint64 // bytes into the symbol
	Hit    int    // which hit counts, 1-based
}

var specPattern = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.]*)(\+0[xX]([0-9a-fA-F]+))?(@([0-9]+))?$`)

// Syntax says what Parse takes, for error messages and usage.
const Syntax = "SYMBOL, SYMBOL+0xOFF, optionally @N for the N-th hit (e.g. del_gendisk, blk_execute_rq+0x10@2)"

// MaxHit bounds @N: a hit count past it is a wrong anchor, not a plan.
const MaxHit = 1000

// Parse reads an anchor spec.
func Parse(s string) (Anchor, error) {
	m := specPattern.FindStringSubmatch(s)
	if m == nil {
		return Anchor{}, fmt.Errorf("anchor %q: want %s", s, Syntax)
	}
	a := Anchor{Symbol: m[1], Hit: 1}
	if m[3] != "" {
		off, err := strconv.ParseUint(m[3], 16, 32)
		if err != nil {
			return Anchor{}, fmt.Errorf("anchor %q: offset 0x%s: %v", s, m[3], err)
		}
		a.Offset = off
	}
	if m[5] != "" {
		n, err := strconv.Atoi(m[5])
		if err != nil || n < 1 || n > MaxHit {
			return Anchor{}, fmt.Errorf("anchor %q: hit @%s: want 1 to %d", s, m[5], MaxHit)
		}
		a.Hit = n
	}
	return a, nil
}

// String is the spec form Parse reads ("@1" and "+0x0" left out).
func (a Anchor) String() string {
	s := a.Symbol
	if a.Offset != 0 {
		s += fmt.Sprintf("+%#x", a.Offset)
	}
	if a.Hit > 1 {
		s += fmt.Sprintf("@%d", a.Hit)
	}
	return s
}

// Symbols is a kernel's text symbols, by address.
type Symbols struct {
	Source string // the file they came from
	names  map[string]uint64
	byAddr []symbolAt // sorted by address: a symbol's end, an address's symbol
}

type symbolAt struct {
	addr uint64
	name string
}

// ErrNoSymbols: the bzImage has neither System.map nor vmlinux beside it.
var ErrNoSymbols = errors.New("no System.map or vmlinux beside the bzImage")

// Lookup reads the text symbols of the kernel whose bzImage is at
// bzImage: System.map in the same directory (a kernel tree's top, or
// yank's cache entry), then vmlinux there; a tree's
// arch/x86/boot/bzImage looks three levels up.
func Lookup(bzImage string) (*Symbols, error) {
	dirs := []string{filepath.Dir(bzImage)}
	if d := filepath.Dir(bzImage); filepath.Base(d) == "boot" {
		dirs = append(dirs, filepath.Join(d, "..", "..", ".."))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "System.map"); exists(p) {
			return ReadSystemMap(p)
		}
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "vmlinux"); exists(p) {
			return ReadVmlinux(p)
		}
	}
	return nil, fmt.Errorf("kernel %s: %w (looked in %s): an anchored cut needs the build's System.map next to the bzImage; copy it there from the build tree, or cut at a time offset (-cut-at offset)",
		bzImage, ErrNoSymbols, strings.Join(dirs, ", "))
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// ReadSystemMap parses "ffffffff81000000 T _text" lines, keeping text
// symbols (t, T, w, W).
func ReadSystemMap(path string) (*Symbols, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &Symbols{Source: path, names: map[string]uint64{}}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 {
			continue
		}
		addr, err := strconv.ParseUint(fl[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not a System.map line: %q", path, n, sc.Text())
		}
		switch fl[1] {
		case "t", "T", "w", "W":
			s.add(fl[2], addr)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s.done()
}

// ReadVmlinux reads the function symbols of an ELF kernel image.
func ReadVmlinux(path string) (*Symbols, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%s: symbols: %w", path, err)
	}
	s := &Symbols{Source: path, names: map[string]uint64{}}
	for _, sym := range syms {
		if elf.ST_TYPE(sym.Info) == elf.STT_FUNC && sym.Value != 0 {
			s.add(sym.Name, sym.Value)
		}
	}
	return s.done()
}

func (s *Symbols) add(name string, addr uint64) {
	if _, dup := s.names[name]; !dup { // a static function's first copy
		s.names[name] = addr
	}
	s.byAddr = append(s.byAddr, symbolAt{addr, name})
}

func (s *Symbols) done() (*Symbols, error) {
	if len(s.names) == 0 {
		return nil, fmt.Errorf("%s: no text symbols", s.Source)
	}
	sort.SliceStable(s.byAddr, func(i, j int) bool { return s.byAddr[i].addr < s.byAddr[j].addr })
	return s, nil
}

// Len is the number of text symbols.
func (s *Symbols) Len() int { return len(s.names) }

// Address resolves a to a kernel virtual address. An unknown symbol's
// error names the three nearest names; an offset past the symbol's end
// (the next symbol) is an error too.
func (s *Symbols) Address(a Anchor) (uint64, error) {
	base, ok := s.names[a.Symbol]
	if !ok {
		return 0, fmt.Errorf("anchor %s: no function %q in %s; nearest: %s", a, a.Symbol, s.Source, strings.Join(s.Nearest(a.Symbol, 3), ", "))
	}
	i := sort.Search(len(s.byAddr), func(i int) bool { return s.byAddr[i].addr > base })
	if i < len(s.byAddr) && base+a.Offset >= s.byAddr[i].addr {
		return 0, fmt.Errorf("anchor %s: offset %#x is past the end of %s (%d bytes long, in %s)", a, a.Offset, a.Symbol, s.byAddr[i].addr-base, s.Source)
	}
	return base + a.Offset, nil
}

// Describe names the function addr lies in, as "name+0xOFF" (the form
// Parse reads), for a vCPU's instruction pointer in a report; "" when addr
// is below every symbol.
func (s *Symbols) Describe(addr uint64) string {
	i := sort.Search(len(s.byAddr), func(i int) bool { return s.byAddr[i].addr > addr })
	if i == 0 {
		return ""
	}
	at := s.byAddr[i-1]
	for j := i - 2; j >= 0 && s.byAddr[j].addr == at.addr; j-- {
		at = s.byAddr[j] // aliases: the first one listed
	}
	return Anchor{Symbol: at.name, Offset: addr - at.addr}.String()
}

// Nearest returns the n names closest to name by edit distance (ties by
// name).
func (s *Symbols) Nearest(name string, n int) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for k := range s.names {
		cs = append(cs, cand{k, editDistance(name, k)})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for i := 0; i < n && i < len(cs); i++ {
		out = append(out, cs[i].name)
	}
	return out
}

// editDistance is Levenshtein's distance.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
