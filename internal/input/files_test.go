package input

import (
	"slices"
	"testing"
)

func TestSortRotation(t *testing.T) {
	in := []string{"d/audit.log", "d/audit.log.1.gz", "d/audit.log.10", "d/audit.log.2.zst", "d/audit.log.9.xz"}
	want := []string{"d/audit.log.10", "d/audit.log.9.xz", "d/audit.log.2.zst", "d/audit.log.1.gz", "d/audit.log"}
	if got := sortRotation(in); !slices.Equal(got, want) {
		t.Errorf("sortRotation(%v) = %v, want %v", in, got, want)
	}
}
