package harness

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHoldsFromLog(t *testing.T) {
	log := `==== trigger life 1 starting at 2026-12-05T08:41:30Z ====
time="2026-12-05T08:41:33Z" level=warning msg="dependency unavailable: holding the stream" @service=benthos dependency="ClaimX API" error="x y" label=claimx_assignment reason=circuit_open records=31
time="2026-12-05T08:41:33Z" level=warning msg="dependency unavailable: holding the stream" @service=benthos dependency="ClaimX API" error="x" label=claimx_assignment reason=503 records=30
time="2026-12-05T08:42:44Z" level=info msg="dependency available again: resuming" @service=benthos dependency="ClaimX API" held_for=1m11.234s held_seconds=71.233869966 label=claimx_assignment records=31
time="2026-12-05T08:42:50Z" level=warning msg="dependency unavailable: holding the stream" @service=benthos dependency="Delta storage" error="x" reason=storage records=20
time="2026-12-05T08:43:00Z" level=info msg="Received SIGTERM, the service is closing" @service=benthos
==== trigger life 2 starting at 2026-12-05T08:44:00Z ====
time="2026-12-05T08:44:06Z" level=info msg="dependency available again: resuming" @service=benthos dependency="ClaimX API" held_for=2m32.56s held_seconds=152.56 records=30
`
	p := &Proc{Name: "trigger", LogPath: filepath.Join(t.TempDir(), "trigger.log")}
	if err := os.WriteFile(p.LogPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	hs := p.Holds()
	if len(hs) != 4 {
		t.Fatalf("holds %+v", hs)
	}
	if h := hs[0]; h.Reason != "circuit_open" || h.Records != 31 || !h.Ended || h.HeldFor.Round(time.Millisecond) != 71234*time.Millisecond {
		t.Errorf("first hold %+v", h)
	}
	// Stopped with its process: held until the last line of that life.
	if h := hs[1]; h.Ended || h.HeldFor != 87*time.Second || h.Reason != "503" {
		t.Errorf("second hold %+v", h)
	}
	if h := hs[2]; h.Dependency != "Delta storage" || h.Ended || h.HeldFor != 10*time.Second {
		t.Errorf("third hold %+v", h)
	}
	// A resume without its start in this life.
	if h := hs[3]; !h.Ended || h.HeldFor.Round(10*time.Millisecond) != 152560*time.Millisecond {
		t.Errorf("fourth hold %+v", h)
	}
	if d, _ := LongestHold(p); d.Round(10*time.Millisecond) != 152560*time.Millisecond {
		t.Errorf("longest %s", d)
	}
}
