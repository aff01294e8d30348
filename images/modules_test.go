package images

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func fakeModulesDir(t *testing.T, dep, builtin string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-test")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o600); err != nil {
		t.Fatal(err)
	}
	if builtin != "" {
		if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestModuleOrder(t *testing.T) {
	dir := fakeModulesDir(t, `kernel/a/top.ko: kernel/b/mid-dash.ko kernel/c/base.ko
kernel/b/mid-dash.ko: kernel/c/base.ko
kernel/c/base.ko:
kernel/d/other.ko.xz: kernel/c/base.ko
`, "kernel/drivers/pci/hotplug/pciehp.ko\n")
	db, err := loadModuleDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.order([]string{"top", "pciehp", "other", "mid_dash"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"base", "mid_dash", "top", "other"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if _, err := db.order([]string{"tap"}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("unknown module error = %v, want it to name %s", err, dir)
	}
}

func TestModuleCycle(t *testing.T) {
	dir := fakeModulesDir(t, "a.ko: b.ko\nb.ko: a.ko\n", "")
	db, err := loadModuleDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.order([]string{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("err = %v, want a cycle error", err)
	}
}
