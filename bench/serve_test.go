package bench

import "testing"

// TestPeakPrefersVmHWM checks that a child's peak is its own VmHWM, not
// getrusage's MaxRSS, which Linux carries over from the parent at fork and
// exec (a harness grown to 1 GiB made every later child report 1 GiB).
func TestPeakPrefersVmHWM(t *testing.T) {
	if got := (ProcStatus{VmHWM: 100 << 20, MaxRSS: 1 << 30}).Peak(); got != 100<<20 {
		t.Errorf("Peak with VmHWM 100 MiB and MaxRSS 1 GiB = %d, want the VmHWM", got)
	}
	if got := (ProcStatus{MaxRSS: 1 << 30}).Peak(); got != 1<<30 {
		t.Errorf("Peak without VmHWM = %d, want MaxRSS", got)
	}
}
