package scenario

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Trigger is what the guest starts at time zero.
type Trigger string

const (
	TriggerUnbind Trigger = "unbind" // echo BDF > /sys/bus/pci/drivers/virtio-pci/unbind
	TriggerSync   Trigger = "sync"   // sync(1): start writeback of the dirty pages
	TriggerNone   Trigger = "none"   // nothing: time zero is a bare marker
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
	IOBuffered IORecipe = "buffered" // /dev/vda held open, dd into the page cache, writeback pending
	IODirect   IORecipe = "direct"   // O_DIRECT writes in a loop (does not reproduce the race; a control)
	IONone     IORecipe = "none"
)

// Scenario is one kind of trial, as data (scenarios.json).
type Scenario struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Trigger     Trigger    `json:"trigger"`
	Removal     Removal    `json:"removal"`
	IO          IORecipe   `json:"io"`
	Offsets     []Duration `json:"offsets"` // the default sweep
	// Window is what must hold at the cut for the trial to test
	// something; a PASS outside it is MISSED.
	Window Window `json:"window"`
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

var catalog = mustLoad(catalogJSON)

func mustLoad(b []byte) map[string]Scenario {
	m, err := LoadCatalog(b)
	if err != nil {
		panic("scenario: embedded scenarios.json: " + err.Error())
	}
	return m
}

// LoadCatalog parses and validates a scenarios file.
func LoadCatalog(b []byte) (map[string]Scenario, error) {
	var f struct {
		Scenarios []Scenario `json:"scenarios"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	m := map[string]Scenario{}
	for _, s := range f.Scenarios {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if _, dup := m[s.Name]; dup {
			return nil, fmt.Errorf("scenario %q defined twice", s.Name)
		}
		m[s.Name] = s
	}
	return m, nil
}

// Validate checks a scenario's fields.
func (s Scenario) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("a scenario has no name")
	}
	switch s.Trigger {
	case TriggerUnbind, TriggerSync, TriggerNone:
	default:
		return fmt.Errorf("scenario %s: unknown trigger %q (want unbind, sync or none)", s.Name, s.Trigger)
	}
	switch s.Removal {
	case RemovalSurprise, RemovalGraceful:
	default:
		return fmt.Errorf("scenario %s: unknown removal %q (want surprise or graceful)", s.Name, s.Removal)
	}
	switch s.IO {
	case IOBuffered, IODirect, IONone:
	default:
		return fmt.Errorf("scenario %s: unknown io recipe %q (want buffered, direct or none)", s.Name, s.IO)
	}
	for _, o := range s.Offsets {
		if err := checkOffset(time.Duration(o)); err != nil {
			return fmt.Errorf("scenario %s: %w", s.Name, err)
		}
	}
	if err := s.Window.validate(); err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	if s.Trigger == TriggerNone && s.Window.Trigger != "" {
		return fmt.Errorf("scenario %s: window.trigger %q, but the trigger is none", s.Name, s.Window.Trigger)
	}
	return nil
}

// MaxOffset bounds removal offsets: past it the trigger has long finished
// (or hung on its own), so the trial would measure nothing.
const MaxOffset = 60 * time.Second

func checkOffset(d time.Duration) error {
	if d < 0 || d > MaxOffset {
		return fmt.Errorf("offset %s out of range: want 0s to %s after the trigger starts", d, MaxOffset)
	}
	return nil
}

// Lookup returns a scenario by name, or an error listing the known ones.
func Lookup(name string) (Scenario, error) {
	s, ok := catalog[name]
	if !ok {
		return Scenario{}, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// Names lists the catalog's scenarios, sorted.
func Names() []string {
	var n []string
	for k := range catalog {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// All returns the catalog in a stable order.
func All() []Scenario {
	var all []Scenario
	for _, n := range Names() {
		all = append(all, catalog[n])
	}
	return all
}
