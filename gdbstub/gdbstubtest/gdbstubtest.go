// Package gdbstubtest is a fake GDB stub for tests of gdbstub clients,
// in the spirit of go-qemu's qmptest: a server on a UNIX socket that
// behaves as QEMU's system-mode stub does where yank depends on it. The
// target stops when a client connects; breakpoints are kept per address;
// c resumes and Hit reports a breakpoint stop as a vCPU reaching an
// address would; s steps (a stop at once); 0x03 interrupts; D removes
// every breakpoint and resumes. It imports nothing of yank.
package gdbstubtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Stub is the fake stub.
type Stub struct {
	Path string // the socket to dial ("unix")

	ln net.Listener

	mu       sync.Mutex
	conn     net.Conn
	running  bool
	detached bool
	breaks   map[uint64]int // address -> kind (0 or 1)
	packets  []string
	memory   map[uint64]byte
	// Refuse makes Z packets of these kinds answer "" (unsupported).
	refuse map[int]bool
	// Silent: the stub reads but never answers (a hung QEMU).
	silent bool
}

// New starts a stub on a socket in t's temp dir; it stops with the test.
func New(t testing.TB) *Stub {
	t.Helper()
	dir, err := os.MkdirTemp("", "gdbstubtest")
	if err != nil {
		t.Fatal(err)
	}
	s := &Stub{Path: filepath.Join(dir, "gdb.sock"), breaks: map[uint64]int{}, memory: map[uint64]byte{}, refuse: map[int]bool{}}
	s.ln, err = net.Listen("unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.ln.Close()
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
		os.RemoveAll(dir)
	})
	go s.accept()
	return s
}

// RefuseKind makes breakpoints of kind (0 software, 1 hardware) unsupported.
func (s *Stub) RefuseKind(kind int) { s.mu.Lock(); s.refuse[kind] = true; s.mu.Unlock() }

// Silence makes the stub stop answering.
func (s *Stub) Silence() { s.mu.Lock(); s.silent = true; s.mu.Unlock() }

// SetMemory puts bytes at addr for m packets.
func (s *Stub) SetMemory(addr uint64, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range b {
		s.memory[addr+uint64(i)] = v
	}
}

func (s *Stub) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conn, s.running, s.detached = c, false, false // QEMU stops the VM on connect
		s.put("T02thread:p01.01;")                      // and reports that stop unasked
		s.mu.Unlock()
		go s.serve(c)
	}
}

// Packets returns every packet received so far, in order.
func (s *Stub) Packets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.packets...)
}

// Breakpoints returns the addresses with a breakpoint.
func (s *Stub) Breakpoints() map[uint64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint64]int{}
	for a, k := range s.breaks {
		out[a] = k
	}
	return out
}

// Running reports whether the target runs.
func (s *Stub) Running() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.running }

// Hit is a vCPU reaching addr: if the target runs and has a breakpoint
// there, it stops and reports T05 for thread; it returns whether it did.
func (s *Stub) Hit(addr uint64, thread int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.breaks[addr]; !ok || !s.running || s.conn == nil {
		return false
	}
	s.running = false
	s.put(fmt.Sprintf("T05thread:p01.%02x;", thread))
	return true
}

func checksum(b string) byte {
	var sum byte
	for i := 0; i < len(b); i++ {
		sum += b[i]
	}
	return sum
}

// put sends a packet; s.mu held.
func (s *Stub) put(data string) {
	fmt.Fprintf(s.conn, "$%s#%02x", data, checksum(data))
}

func (s *Stub) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		switch b {
		case 0x03:
			s.mu.Lock()
			if s.running && !s.silent {
				s.running = false
				s.put("T02thread:p01.01;")
			}
			s.mu.Unlock()
			continue
		case '$':
		default:
			continue
		}
		body, err := r.ReadString('#')
		if err != nil {
			return
		}
		sum := make([]byte, 2)
		if _, err := r.Read(sum[:1]); err != nil {
			return
		}
		if _, err := r.Read(sum[1:]); err != nil {
			return
		}
		body = body[:len(body)-1]
		c.Write([]byte{'+'})
		s.handle(body)
	}
}

func (s *Stub) handle(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets = append(s.packets, p)
	if s.silent {
		return
	}
	switch {
	case strings.HasPrefix(p, "qSupported"):
		s.put("PacketSize=1000")
	case p == "?":
		s.put("T05thread:p01.01;")
	case p == "c":
		s.running = true
	case p == "s":
		s.put("T05thread:p01.01;")
	case p == "D":
		s.breaks = map[uint64]int{}
		s.running, s.detached = true, true
		s.put("OK")
	case strings.HasPrefix(p, "Z") || strings.HasPrefix(p, "z"):
		f := strings.Split(p[1:], ",")
		kind, _ := strconv.Atoi(f[0])
		addr, err := strconv.ParseUint(f[1], 16, 64)
		switch {
		case err != nil || len(f) != 3:
			s.put("E22")
		case s.refuse[kind]:
			s.put("")
		case p[0] == 'Z':
			s.breaks[addr] = kind
			s.put("OK")
		default:
			delete(s.breaks, addr)
			s.put("OK")
		}
	case strings.HasPrefix(p, "m"):
		a, n, _ := strings.Cut(p[1:], ",")
		addr, _ := strconv.ParseUint(a, 16, 64)
		cnt, _ := strconv.ParseUint(n, 16, 32)
		var out strings.Builder
		for i := uint64(0); i < cnt; i++ {
			fmt.Fprintf(&out, "%02x", s.memory[addr+i])
		}
		s.put(out.String())
	default:
		s.put("") // unsupported, as QEMU answers unknown packets
	}
}

// Detached reports whether the client detached.
func (s *Stub) Detached() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.detached }
