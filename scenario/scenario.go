package scenario

import (
	"github.com/yank-dev/yank/anchor"

	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Trigger is what the guest starts at time zero.
type Trigger string

const (
	TriggerUnbind  Trigger = "unbind"  // echo BDF > /sys/bus/pci/drivers/<device driver>/unbind
	TriggerSync    Trigger = "sync"    // sync(1): start writeback of the dirty pages
	TriggerNone    Trigger = "none"    // nothing: time zero is a bare marker
	TriggerCommand Trigger = "command" // the scenario's trigger_argv
)

// Removal is how the host removes the disk.
type Removal string

const (
	RemovalSurprise Removal = "surprise" // slot power cut (qmp.Surprise)
	RemovalGraceful Removal = "graceful" // device_del, Attention Button (qmp.Graceful)
)

// IORecipe is the load on the disk before time zero.
type IORecipe string

const (
	IOBuffered IORecipe = "buffered" // the disk held open, dd into the page cache, writeback pending
	IODirect   IORecipe = "direct"   // O_DIRECT writes in a loop (does not reproduce the race; a control)
	IONone     IORecipe = "none"
	IOCommand  IORecipe = "command" // the scenario's load_argv
)

// Scenario is one kind of trial, as data (scenarios.json, or a user's
// file in the same schema: LoadFile).
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Device is the disk the trial removes (devices.json); "" is
	// virtio-blk.
	Device  string  `json:"device,omitempty"`
	Trigger Trigger `json:"trigger"`
	// TriggerArgv is a user's trigger (Trigger "command"), run in the guest
	// through the agent as an argv list, never as a shell string: a user
	// who wants a shell writes ["sh", "-c", "..."]. It runs with YANK_DEV
	// (/dev/<disk>), YANK_DISK, YANK_BDF and YANK_DRIVER in its
	// environment.
	TriggerArgv Argv     `json:"trigger_argv,omitempty"`
	Removal     Removal  `json:"removal"`
	IO          IORecipe `json:"io"`
	// LoadArgv is a user's load (IO "command"), an argv list like
	// TriggerArgv. yank waits (up to 2 min) for it to exit 0 before the
	// trigger, unless LoadBackground: then it keeps running.
	LoadArgv       Argv       `json:"load_argv,omitempty"`
	LoadBackground bool       `json:"load_background,omitempty"`
	Offsets        []Duration `json:"offsets"` // the default sweep of timed cuts (after T0)
	// CutAt anchors the cut to a guest event (anchor.Parse): a kernel
	// function that opens the window, where the removal fires
	// CutDelays after its hit. Commands use it unless told -cut-at
	// offset; without it the cut is timed (Offsets).
	CutAt string `json:"cut_at,omitempty"`
	// CutDelays is the default sweep of delays after CutAt's hit
	// (default ["0s"]: the cut made while the guest is stopped there).
	CutDelays []Duration `json:"cut_delays,omitempty"`
	// CutNote says why the scenario cuts where it does (the catalog
	// shows it): what the anchor's function is doing when the window
	// opens, or why the cut is timed.
	CutNote string `json:"cut_note,omitempty"`
	// Window is what must hold at the cut for the trial to test
	// something; a PASS outside it is MISSED.
	Window Window `json:"window"`
	// HangAfter, if longer than the device's horizon (Device.HangAfter),
	// is how long a stall must last to be a HANG in this scenario: one
	// whose stall is known to end (a timeout in the path it drives) says
	// how long, so that its end reads RECOVERED.
	HangAfter Duration `json:"hang_after,omitempty"`
	// Source is the file the scenario came from ("" for built-in ones).
	Source string `json:"-"`
}

// Argv is a command as an argument vector. In JSON it must be a list of
// strings: one string is refused rather than split or given to a shell.
type Argv []string

func (a *Argv) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*a = list
		return nil
	}
	var one string
	if json.Unmarshal(b, &one) == nil {
		return fmt.Errorf("got the string %q: want an argv list such as [\"sync\"] (yank never hands a string to a shell; for a shell write [\"sh\", \"-c\", %q])", one, one)
	}
	return fmt.Errorf("got %s: want an argv list of strings such as [\"sync\"]", b)
}

// DeviceInfo is the scenario's device description (nil for an unknown
// device, which Validate rejects).
func (s Scenario) DeviceInfo() *Device {
	if s.Device == "" {
		return devices[DefaultDevice]
	}
	return devices[s.Device]
}

// WindowWant is the scenario's window with "removing" spelled out: the
// trigger running with one of its device's RemoveWaits in its stack,
// before the device's RemoveEndLine unless the window names its own.
func (s Scenario) WindowWant() Window {
	w := s.Window
	if w.Trigger == WindowRemoving {
		w.Trigger = WindowRunning
		if d := s.DeviceInfo(); d != nil {
			w.TriggerIn = d.RemoveWaits
			w.EndLine = cmp.Or(w.EndLine, d.RemoveEndLine)
		}
	}
	return w
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1.5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

//go:embed scenarios.json
var catalogJSON []byte

// The catalog: the built-in scenarios and those of the files a run
// loaded (AddFile), by name.
var (
	catalogMu sync.RWMutex
	catalog   = mustLoad(catalogJSON)
)

func mustLoad(b []byte) map[string]Scenario {
	list, err := LoadCatalog(b)
	if err != nil {
		panic("scenario: embedded scenarios.json: " + err.Error())
	}
	m := map[string]Scenario{}
	for _, s := range list {
		m[s.Name] = s
	}
	return m
}

// LoadCatalog parses and validates a scenarios file's bytes: {"scenarios":
// [...]}, each scenario's fields as documented on Scenario. Errors name
// the scenario (by name, or by position when it has none) and the field.
func LoadCatalog(b []byte) ([]Scenario, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	for k := range f {
		if k != "scenarios" {
			return nil, fmt.Errorf("unknown top-level field %q: want {\"scenarios\": [...]}", k)
		}
	}
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(f["scenarios"], &raws); err != nil || len(raws) == 0 {
		return nil, fmt.Errorf("field \"scenarios\": want a non-empty list of scenario objects")
	}
	var out []Scenario
	seen := map[string]bool{}
	for i, raw := range raws {
		s, err := decodeScenario(raw)
		s = s.implied()
		if err == nil {
			err = s.Validate()
		}
		if err != nil {
			if s.Name == "" {
				return nil, fmt.Errorf("scenario #%d: %w", i+1, err)
			}
			return nil, err
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("scenario %q: defined twice", s.Name)
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

// decodeScenario reads one scenario field by field, so that an error
// names its field and a misspelt field is an error, not a silent default.
func decodeScenario(raw map[string]json.RawMessage) (Scenario, error) {
	var s Scenario
	fields := map[string]any{
		"name": &s.Name, "description": &s.Description, "device": &s.Device,
		"trigger": &s.Trigger, "trigger_argv": &s.TriggerArgv, "removal": &s.Removal,
		"io": &s.IO, "load_argv": &s.LoadArgv, "load_background": &s.LoadBackground,
		"offsets": &s.Offsets, "window": &s.Window, "hang_after": &s.HangAfter,
		"cut_at": &s.CutAt, "cut_delays": &s.CutDelays, "cut_note": &s.CutNote,
	}
	if v, ok := raw["name"]; ok {
		if err := json.Unmarshal(v, &s.Name); err != nil {
			return s, fmt.Errorf("field \"name\": want a string: %w", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		target, ok := fields[k]
		if !ok {
			return s, s.fieldErr(k, "unknown field (known: %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
		}
		dec := json.NewDecoder(bytes.NewReader(raw[k]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			return s, s.fieldErr(k, "%v", err)
		}
	}
	return s, nil
}

// fieldErr is a validation error naming the scenario and the field.
func (s Scenario) fieldErr(field, format string, args ...any) error {
	name := "scenario"
	if s.Name != "" {
		name = fmt.Sprintf("scenario %q", s.Name)
	}
	return fmt.Errorf("%s: field %q: %s", name, field, fmt.Sprintf(format, args...))
}

// Validate checks a scenario's fields; an error names the field and what
// it takes.
func (s Scenario) Validate() error {
	if s.Name == "" {
		return errors.New("field \"name\": missing: every scenario needs a name")
	}
	if s.Name != SafeName(s.Name) {
		return s.fieldErr("name", "%q: use letters, digits, '.', '_' and '-' only (it names the evidence dir)", s.Name)
	}
	dev := s.DeviceInfo()
	if dev == nil {
		return s.fieldErr("device", "unknown device %q (known: %s)", s.Device, strings.Join(DeviceNames(), ", "))
	}
	switch s.Trigger {
	case TriggerUnbind, TriggerSync, TriggerNone:
		if len(s.TriggerArgv) > 0 {
			return s.fieldErr("trigger_argv", "given with trigger %q: a trigger_argv needs trigger \"command\" (or no trigger field)", s.Trigger)
		}
	case TriggerCommand:
		if err := checkArgv(s.TriggerArgv); err != nil {
			return s.fieldErr("trigger_argv", "%v", err)
		}
	case "":
		return s.fieldErr("trigger", "missing: want unbind, sync or none, or a non-empty trigger_argv list (then trigger may be left out)")
	default:
		return s.fieldErr("trigger", "unknown trigger %q (want unbind, sync, none, or command with a trigger_argv list; a command is an argv list in trigger_argv, never a string)", s.Trigger)
	}
	switch s.Removal {
	case RemovalSurprise, RemovalGraceful:
	default:
		return s.fieldErr("removal", "unknown removal %q (want surprise or graceful)", s.Removal)
	}
	switch s.IO {
	case IOBuffered, IODirect, IONone:
		if len(s.LoadArgv) > 0 {
			return s.fieldErr("load_argv", "given with io %q: a load_argv needs io \"command\" (or no io field)", s.IO)
		}
		if s.LoadBackground {
			return s.fieldErr("load_background", "only for io \"command\"")
		}
	case IOCommand:
		if err := checkArgv(s.LoadArgv); err != nil {
			return s.fieldErr("load_argv", "%v", err)
		}
	case "":
		return s.fieldErr("io", "missing: want buffered, direct or none, or a non-empty load_argv list (then io may be left out)")
	default:
		return s.fieldErr("io", "unknown io recipe %q (want buffered, direct, none, or command with a load_argv list)", s.IO)
	}
	if len(s.Offsets) == 0 {
		return s.fieldErr("offsets", "missing: give the default sweep, e.g. [\"1s\", \"2s\"]")
	}
	for i, o := range s.Offsets {
		if err := checkOffset(time.Duration(o)); err != nil {
			return s.fieldErr("offsets", "[%d]: %v", i, err)
		}
	}
	if s.CutAt != "" {
		if _, err := anchor.Parse(s.CutAt); err != nil {
			return s.fieldErr("cut_at", "%v", err)
		}
	} else if len(s.CutDelays) > 0 {
		return s.fieldErr("cut_delays", "given without cut_at: delays are after an anchor's hit; name the function in cut_at, or use offsets")
	}
	for i, d := range s.CutDelays {
		if d < 0 || time.Duration(d) > MaxAnchorDelay {
			return s.fieldErr("cut_delays", "[%d]: %s: want 0s to %s after the anchor's hit", i, d, MaxAnchorDelay)
		}
	}
	if s.HangAfter != 0 && (time.Duration(s.HangAfter) < minHangAfter || time.Duration(s.HangAfter) > 10*time.Minute) {
		return s.fieldErr("hang_after", "%s: want %s to 10m, or leave it out for the device's horizon (it only ever lengthens that)", s.HangAfter, minHangAfter)
	}
	if err := s.Window.validate(); err != nil {
		return s.fieldErr("window", "%v", err)
	}
	if s.Trigger == TriggerNone && s.Window.Trigger != "" {
		return s.fieldErr("window", "window.trigger %q, but the trigger is none", s.Window.Trigger)
	}
	if s.Window.Trigger == WindowRemoving && s.Trigger != TriggerUnbind && s.Trigger != TriggerCommand {
		return s.fieldErr("window", "window.trigger \"removing\" (inside %s's remove()) needs trigger unbind or command, not %s", dev.Driver, s.Trigger)
	}
	return nil
}

// implied sets trigger and io to "command" where only the argv was given.
func (s Scenario) implied() Scenario {
	if s.Trigger == "" && len(s.TriggerArgv) > 0 {
		s.Trigger = TriggerCommand
	}
	if s.IO == "" && len(s.LoadArgv) > 0 {
		s.IO = IOCommand
	}
	return s
}

func checkArgv(a Argv) error {
	switch {
	case len(a) == 0:
		return errors.New("missing or empty: want an argv list such as [\"sync\"]")
	case a[0] == "":
		return errors.New("argv[0] is empty: name the program, e.g. \"sync\" or \"/bin/sh\"")
	}
	return nil
}

// minHangAfter is the shortest hang_after: the default stall window (a
// shorter one would never apply, Device.HangAfter being at least that).
const minHangAfter = 3 * time.Second

// MaxOffset bounds removal offsets: past it the trigger has long finished
// (or hung on its own), so the trial would measure nothing.
const MaxOffset = 60 * time.Second

// MaxAnchorDelay bounds the delay after an anchor's hit: an anchored cut
// exists to land near its event.
const MaxAnchorDelay = 10 * time.Second

// CutTimed is -cut-at's word for timed cuts (Offsets after T0), where a
// scenario names an anchor.
const CutTimed = "offset"

func checkOffset(d time.Duration) error {
	if d < 0 || d > MaxOffset {
		return fmt.Errorf("offset %s out of range: want 0s to %s after the trigger starts", d, MaxOffset)
	}
	return nil
}

// LoadFile reads a user's scenario file; errors name the file, the
// scenario and the field.
func LoadFile(path string) ([]Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario file: %w", err)
	}
	list, err := LoadCatalog(b)
	if err != nil {
		return nil, fmt.Errorf("scenario file %s: %w", path, err)
	}
	for i := range list {
		list[i].Source = path
	}
	return list, nil
}

// AddFile loads a user's scenario file into the catalog, where Lookup
// finds its scenarios beside the built-in ones, and returns them. A name
// the catalog already has is an error.
func AddFile(path string) ([]Scenario, error) {
	list, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	catalogMu.Lock()
	defer catalogMu.Unlock()
	for _, s := range list {
		if prev, dup := catalog[s.Name]; dup {
			from := "a built-in scenario"
			if prev.Source != "" {
				from = "a scenario of " + prev.Source
			}
			if prev.Source == path {
				// The same file loaded twice (a suite's parallel processes
				// share the flag): nothing new.
				return list, nil
			}
			return nil, fmt.Errorf("scenario file %s: scenario %q: field \"name\": already %s; rename it", path, s.Name, from)
		}
	}
	for _, s := range list {
		catalog[s.Name] = s
	}
	return list, nil
}

// Lookup returns a scenario by name, or an error listing the known ones.
func Lookup(name string) (Scenario, error) {
	catalogMu.RLock()
	s, ok := catalog[name]
	catalogMu.RUnlock()
	if !ok {
		return Scenario{}, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// Names lists the catalog's scenarios, sorted.
func Names() []string {
	catalogMu.RLock()
	defer catalogMu.RUnlock()
	return slices.Sorted(maps.Keys(catalog))
}

// All returns the catalog in a stable order.
func All() []Scenario {
	var all []Scenario
	for _, n := range Names() {
		s, _ := Lookup(n)
		all = append(all, s)
	}
	return all
}

// Defaults are what a run covers when it names no scenarios: the
// built-in scenarios of the default device (virtio-blk), the RFC's own
// case. The other devices' scenarios run when named.
func Defaults() []Scenario {
	var out []Scenario
	for _, s := range All() {
		if s.Source == "" && (s.Device == "" || s.Device == DefaultDevice) {
			out = append(out, s)
		}
	}
	return out
}

// DefaultNames are the names of Defaults.
func DefaultNames() []string {
	var n []string
	for _, s := range Defaults() {
		n = append(n, s.Name)
	}
	return n
}

// Delays is the scenario's default sweep of delays after its anchor.
func (s Scenario) Delays() []time.Duration {
	if len(s.CutDelays) == 0 {
		return []time.Duration{0}
	}
	var out []time.Duration
	for _, d := range s.CutDelays {
		out = append(out, time.Duration(d))
	}
	return out
}
