package kernels

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// HasDisconnectHook reports whether the kernel image contains RFC v3's
// behaviour change: pci_dev_set_disconnected() scheduling a work item.
//
// The check reads machine code, not sources or debug info. The RFC makes
// the static inline pci_dev_set_disconnected() (drivers/pci/pci.h) call
// schedule_work(), which compiles to a call of queue_work_on(). Because
// pciehp passes the function to pci_walk_bus(), every such kernel has an
// out-of-line copy named pci_dev_set_disconnected in vmlinux's symbol table
// (a local symbol; vmlinux is not stripped). On stock 6.1 that copy only
// sets the channel state and never calls into the workqueue code. So: find
// each copy, decode its rel32 call/jmp instructions (E8/E9) and see whether
// one targets queue_work_on. A false positive would need an unrelated byte
// sequence E8/E9 + the exact displacement to queue_work_on inside this
// 30-100 byte function; a false negative is impossible while schedule_work
// stays a direct call (no retpoline/thunk applies to direct calls).
// It needs no debug info, so it costs no build time.
func HasDisconnectHook(vmlinux string) (bool, error) {
	f, err := elf.Open(vmlinux)
	if err != nil {
		return false, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return false, fmt.Errorf("%s: %w (stripped?)", vmlinux, err)
	}
	var target uint64
	var copies []elf.Symbol
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		switch s.Name {
		case "queue_work_on":
			target = s.Value
		case "pci_dev_set_disconnected":
			copies = append(copies, s)
		}
	}
	if target == 0 {
		return false, errors.New("queue_work_on not in symbol table")
	}
	if len(copies) == 0 {
		return false, errors.New("pci_dev_set_disconnected not in symbol table (CONFIG_HOTPLUG_PCI_PCIE off?)")
	}
	for _, s := range copies {
		code, err := symbolBytes(f, s)
		if err != nil {
			return false, err
		}
		if callsTarget(code, s.Value, target) {
			return true, nil
		}
	}
	return false, nil
}

func symbolBytes(f *elf.File, s elf.Symbol) ([]byte, error) {
	if int(s.Section) >= len(f.Sections) || s.Size == 0 || s.Size > 1<<20 {
		return nil, fmt.Errorf("symbol %s: bad section or size", s.Name)
	}
	sec := f.Sections[s.Section]
	if s.Value < sec.Addr || s.Value+s.Size > sec.Addr+sec.Size {
		return nil, fmt.Errorf("symbol %s outside its section", s.Name)
	}
	code := make([]byte, s.Size)
	if _, err := sec.ReadAt(code, int64(s.Value-sec.Addr)); err != nil {
		return nil, err
	}
	return code, nil
}

// callsTarget scans code (loaded at addr) for "call rel32" or "jmp rel32"
// whose destination is target.
func callsTarget(code []byte, addr, target uint64) bool {
	for i := 0; i+5 <= len(code); i++ {
		if code[i] != 0xe8 && code[i] != 0xe9 {
			continue
		}
		rel := int32(binary.LittleEndian.Uint32(code[i+1 : i+5]))
		next := addr + uint64(i) + 5
		if next+uint64(int64(rel)) == target {
			return true
		}
	}
	return false
}
