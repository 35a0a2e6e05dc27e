//go:build unix

package localstack

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a child process (see TestMain)
// instead of running tests.
const helperEnv = "LOCALSTACK_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "stubborn-parent":
		// Starts a grandchild, announces its pid, and ignores SIGTERM: stop
		// must kill both, the one that outlives its parent included.
		signal.Ignore(syscall.SIGTERM)
		child := exec.Command("sleep", "300")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("{\"child\": %d}\n", child.Process.Pid)
		select {}
	case "polite":
		// Exits when asked.
		fmt.Println(`{"child": 0}`)
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		<-sigs
		os.Exit(0)
	case "silent":
		os.Exit(3) // exits without announcing anything
	}
}

// startHelper starts the test binary as the helper named role.
func startHelper(t *testing.T, role string) (*process, int, error) {
	t.Helper()
	var line struct {
		Child int `json:"child"`
	}
	proc, err := startAnnouncing(t.Context(), processSpec{
		name: role, path: os.Args[0], args: []string{"-test.run=^$"},
		env: []string{helperEnv + "=" + role}, logPath: filepath.Join(t.TempDir(), role+".log"),
	}, &line)
	if proc != nil {
		t.Cleanup(func() { _ = proc.stop(time.Second) })
	}
	return proc, line.Child, err
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStopKillsTheWholeGroup(t *testing.T) {
	t.Parallel()
	proc, child, err := startHelper(t, "stubborn-parent")
	if err != nil {
		t.Fatal(err)
	}
	if !alive(child) {
		t.Fatalf("grandchild %d is not running", child)
	}
	err = proc.stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stop of a process ignoring SIGTERM = %v, want a kill", err)
	}
	// The grandchild is reaped by init, so it may linger as a zombie for a
	// moment; it must not stay alive.
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) && !isZombie(child) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived stop", child)
		}
		time.Sleep(10 * time.Millisecond) // polling the kernel, not synchronizing goroutines
	}
}

// isZombie reports whether pid has exited but is not reaped yet (Linux;
// elsewhere it says false, and the loop waits for the process to go).
func isZombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

func TestStopIsCleanForAProcessThatExitsOnSIGTERM(t *testing.T) {
	t.Parallel()
	proc, _, err := startHelper(t, "polite")
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.stop(10 * time.Second); err != nil {
		t.Errorf("stop = %v, want a clean exit", err)
	}
	if err := proc.stop(10 * time.Second); err != nil {
		t.Errorf("second stop = %v", err)
	}
	select {
	case <-proc.exited():
	default:
		t.Error("exited is open after stop")
	}
}

func TestStartAnnouncingReportsAnEarlyExit(t *testing.T) {
	t.Parallel()
	_, _, err := startHelper(t, "silent")
	if err == nil || !strings.Contains(err.Error(), "exited before announcing") {
		t.Errorf("startAnnouncing of a silent process = %v", err)
	}
}
