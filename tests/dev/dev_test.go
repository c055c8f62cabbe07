// Package dev tests the README's first command, `claimx-connect dev`, as a
// user runs it: the real binary, from the repository root.
package dev

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s", dir)
	}
	return dir
}

func TestDevRunsTheWholeFlow(t *testing.T) {
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "claimx-connect")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--events", "400", "--rate", "0",
		"--broker-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data", data)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		logs, _ := os.ReadFile(filepath.Join(data, "logs", "streams.log"))
		t.Fatalf("dev failed: %v\n%s\n--- streams.log (tail) ---\n%s", err, out.String(), tail(logs, 4000))
	}
	text := out.String()
	t.Log(text)
	num := func(re string) int {
		m := regexp.MustCompile(re).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no %q in the output", re)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	tracked := num(`task events tracked\s+(\d+)`)
	rows := num(`rows written\s+(\d+)`)
	if tracked == 0 || rows != tracked {
		t.Fatalf("tracked %d, rows %d", tracked, rows)
	}
	if !regexp.MustCompile(`✔ every malformed event and unknown assignment is on the errors topic \((\d+)\)`).MatchString(text) {
		t.Fatal("malformed events are not all on the errors topic")
	}
	// The forms stream: completed forms, their photos and submissions.
	if forms := num(`forms written\s+(\d+)`); forms == 0 {
		t.Fatal("no completed form reached the forms table")
	}
	if num(`photos\s+\d+\s+\((\d+) stored`) == 0 {
		t.Fatal("no photo was stored")
	}
	// The status and alerts streams: every change once, every alert once.
	if changes := num(`status changes\s+(\d+)`); changes == 0 {
		t.Fatal("no status change reached the status topic")
	}
	if !regexp.MustCompile(`alerts\s+\d+\s+\([^)]*completed \d+`).MatchString(text) {
		t.Fatal("the summary shows no completed alert")
	}
	if !regexp.MustCompile(`✔ every status change recorded once \(\d+\) and every alert sent once \(\d+\)`).MatchString(text) {
		t.Fatal("the alerts summary reports a problem")
	}
	if !regexp.MustCompile(`✔ one forms row per form response \(\d+\), every stored photo byte-equal to ClaimX's \(\d+\), one accepted iTel submission per form \(\d+\)`).MatchString(text) {
		t.Fatal("the forms summary reports a problem")
	}
	// The SLA stream and the status stream's deadline timer: a row per
	// change, the hours per status, one breach per assignment left open.
	if !regexp.MustCompile(`(?m)^COMPLETED\s+\d+\s+[\d.]+\s+[\d.]+\s+\d+/\d+`).MatchString(text) {
		t.Fatal("the SLA summary shows no COMPLETED hours")
	}
	if breaches := num(`breaches (\d+) \(`); breaches == 0 {
		t.Fatal("no SLA breach for the assignments left open (the events are months old)")
	}
	if !regexp.MustCompile(`✔ one SLA row per status change \(\d+\) and one breach per open assignment past its target \(\d+\)`).MatchString(text) {
		t.Fatal("the SLA summary reports a problem")
	}
	if _, err := os.Stat(filepath.Join(data, "itel_cabinet_task_tracking", "_delta_log", "00000000000000000000.json")); err != nil {
		t.Fatalf("no table left in the data directory: %v", err)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
