package machine_test

import (
	"os"
	"testing"

	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/machinetest"
)

func TestMain(m *testing.M) {
	if machinetest.IsChild() {
		os.Exit(machinetest.RunChild(machine.Options{}))
	}
	os.Exit(m.Run())
}
