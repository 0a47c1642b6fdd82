package procprio

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestReniceSetsEveryThread: every thread of the child, those started
// after the call included, runs at the nice value asked for.
func TestReniceSetsEveryThread(t *testing.T) {
	if os.Getenv("LINE_RENICE_CHILD") != "" {
		// The child: start threads after the parent reniced us, then wait.
		done := make(chan struct{})
		for range 4 {
			go func() { <-done }()
		}
		select {}
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestReniceSetsEveryThread$")
	cmd.Env = append(os.Environ(), "LINE_RENICE_CHILD=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	if err := Renice(cmd.Process.Pid, 7); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) == 0 {
		t.Fatal("the child has no threads")
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", cmd.Process.Pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command's closing parenthesis: state is field
		// 3, nice field 19.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 17 || f[16] != "7" {
			t.Errorf("thread %s: nice field %v, want 7", task.Name(), f[16:17])
		}
	}
}
