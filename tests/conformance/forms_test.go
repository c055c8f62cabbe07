//go:build conformance

package conformance

// The forms stream on real Kafka (issue 16): every completed iTel Cabinet
// Repair Form of a run gives exactly one forms row per form response, one
// stored object per photo (bytes and SHA-256 equal to what ClaimX serves),
// and exactly one accepted iTel submission per form response — across
// SIGKILLs of the forms stream and the worker and a 60 s iTel outage — while
// a corpus of bad forms (a missing group, an unknown question, a wrong
// answer type, 0-byte and oversize photos, expired download links) ends as documented: NULL columns,
// other_answers, a record error naming the question, rejected attachments
// with their reasons on the forms errors topic.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// formsTable reads every live row of one of the forms stream's tables.
func formsTable(t *testing.T, dir string) []map[string]any {
	t.Helper()
	st := openLocal(t, dir)
	tbl, err := delta.Open(t.Context(), st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening %s: %v", dir, err)
	}
	snap := tbl.Snapshot()
	names := snap.Schema().Names()
	var out []map[string]any
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(t.Context(), st, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			m := map[string]any{}
			for i, n := range names {
				m[n] = r[i]
			}
			out = append(out, m)
		}
	}
	return out
}

// completedForm is a form response the worker published as COMPLETED.
type completedForm struct {
	key        string // assignment_id:form_response_id
	assignment int64
	photos     []int64
	completed  bool // the assignment has answers (response not null)
}

// formsFromWorker reads the worker's success topic: the completed forms the
// forms stream must see, from the assignments the worker stored.
func formsFromWorker(t *testing.T, e *harness.Env) map[string]*completedForm {
	t.Helper()
	out := map[string]*completedForm{}
	for _, r := range e.ConsumeAll(e.Names.Success) {
		var m struct {
			EnrichedData struct {
				TaskStatus     string  `json:"task_status"`
				ClaimxTaskFull *string `json:"claimx_task_full"`
			} `json:"enriched_data"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("success message at offset %d: %v", r.Offset, err)
		}
		if m.EnrichedData.TaskStatus != "COMPLETED" || m.EnrichedData.ClaimxTaskFull == nil {
			continue
		}
		var a struct {
			AssignmentID   int64  `json:"assignmentId"`
			FormResponseID string `json:"formResponseId"`
			Response       *struct {
				Groups []struct {
					QAs []struct {
						Answer struct {
							Type string  `json:"type"`
							IDs  []int64 `json:"claimMediaIds"`
						} `json:"responseAnswerExport"`
					} `json:"questionAndAnswers"`
				} `json:"groups"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(*m.EnrichedData.ClaimxTaskFull), &a); err != nil {
			t.Fatalf("claimx_task_full at offset %d: %v", r.Offset, err)
		}
		f := &completedForm{key: fmt.Sprintf("%d:%s", a.AssignmentID, a.FormResponseID), assignment: a.AssignmentID, completed: a.Response != nil}
		if a.Response != nil {
			for _, g := range a.Response.Groups {
				for _, q := range g.QAs {
					if q.Answer.Type == "image" {
						f.photos = append(f.photos, q.Answer.IDs...)
					}
				}
			}
		}
		out[f.key] = f
	}
	return out
}

func TestFormsStreamExactlyOnceAcrossKillsAndITelOutage(t *testing.T) {
	const oversize = 3 << 20
	e := faultEnv(t, "forms", harness.Options{
		Strict: true,
		Sim:    func(c *claimxsim.Config) { c.MediaOversizeBytes = oversize },
		ChildEnv: []string{
			"ITEL_PHOTO_MAX_SIZE=2MiB",
			// Probes within seconds of the end of an outage (Retry-After is
			// honoured all the same).
			"ITEL_HOLD_MAX_INTERVAL=5s", "ITEL_BREAKER_OPEN_TIMEOUT=5s", "ITEL_API_RETRY_INITIAL=200ms", "ITEL_API_MAX_ATTEMPTS=2",
		},
	})
	ctx := t.Context()
	events, x := generate(t, e, 16, 600)

	// The bad-forms corpus, on completed iTel forms the events complete.
	completedIDs := map[int64]bool{}
	for _, i := range x.Tracked {
		if ev := events[i]; ev.EventType == "CUSTOM_TASK_COMPLETED" {
			completedIDs[ev.AssignmentID] = true
		}
	}
	var candidates []int64
	for _, a := range e.Sim.Assignments() {
		if completedIDs[a.AssignmentID] && a.Status == claimxsim.StatusCompleted && a.TaskID == claimxsim.ITelTemplateID && len(e.Sim.MediaIDs(a.AssignmentID)) > 0 {
			candidates = append(candidates, a.AssignmentID)
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i] < candidates[j] })
	if len(candidates) < 8 {
		t.Fatalf("only %d completed iTel forms with photos in the corpus: change the seed", len(candidates))
	}
	missingGroup, unknownQ, wrongType := candidates[0], candidates[1], candidates[2]
	for id, d := range map[int64]claimxsim.FormDefect{missingGroup: claimxsim.DefectMissingGroup, unknownQ: claimxsim.DefectUnknownQuestion, wrongType: claimxsim.DefectWrongType} {
		if err := e.Sim.DamageForm(id, d); err != nil {
			t.Fatal(err)
		}
	}
	emptyPhoto, oversizePhoto := e.Sim.MediaIDs(candidates[3])[0], e.Sim.MediaIDs(candidates[4])[0]
	if err := e.Sim.SetFaults(claimxsim.Faults{MediaEmpty: []int64{emptyPhoto}, MediaOversize: []int64{oversizePhoto}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("bad forms: missing group %d, unknown question %d, wrong type %d; 0-byte photo %d, oversize photo %d",
		missingGroup, unknownQ, wrongType, emptyPhoto, oversizePhoto)

	trigger, worker, forms := e.TriggerProc(), e.WorkerProc(), e.FormsProc()
	trigger.Start()
	worker.Start()
	forms.Start()
	began := time.Now()

	// Phase 1: half the events; the forms stream is killed twice and the
	// worker once while forms flow.
	half := len(events) / 2
	pub1 := e.PublishFrom(events[:half], 0, 60, 20)
	rng := rand.New(rand.NewPCG(16, 2))
	kills := e.KillRepeatedly(forms, 2, rng, pub1, e.Names.FormsGroup, e.Names.Success, e.TopicsGrowth(e.Names.FormsSuccess, e.Names.FormsErrors))
	kills = append(kills, e.KillRepeatedly(worker, 1, rng, pub1, e.Names.WorkerGroup, e.Names.Tracking, e.TopicsGrowth(e.Names.Success, e.Names.Errors))...)
	pub1.Wait(t)

	// Phase 2: the rest arrives while, for 5 s, every download link ClaimX
	// hands out has already expired (the stream refreshes them and holds,
	// never rejects a photo for it); then iTel is down for 60 s, and the
	// forms stream is killed in the middle of that hold.
	bad := claimxsim.Faults{MediaEmpty: []int64{emptyPhoto}, MediaOversize: []int64{oversizePhoto}}
	expired := bad
	expired.MediaLinksExpired = true
	if err := e.Sim.SetFaults(expired); err != nil {
		t.Fatal(err)
	}
	pub2 := e.PublishFrom(events, half, 60, 20)
	keepAlive(e, 5*time.Second)
	outage := bad
	outage.ITelOutageFor = claimxsim.Duration(60 * time.Second)
	if err := e.Sim.SetFaults(outage); err != nil {
		t.Fatal(err)
	}
	outageFrom := time.Now()
	accepted0 := e.Sim.ITelCounts().Accepted
	keepAlive(e, 25*time.Second)
	forms.Kill()
	forms.Start()
	keepAlive(e, time.Until(outageFrom.Add(60*time.Second)))
	if got := e.Sim.ITelCounts().Accepted; got != accepted0 {
		t.Errorf("iTel accepted %d submissions during its outage", got-accepted0)
	}
	pub := harness.MergePublishers(pub1, pub2)
	e.WaitDrained(pub, 3*time.Second, 4*time.Minute)
	waitUntil(e, "the forms stream to drain", 3*time.Minute, func() bool {
		lag, err := e.GroupLag(ctx, e.Names.FormsGroup, e.Names.Success)
		return err == nil && lag == 0
	})
	keepAlive(e, 2*time.Second)
	fm, _ := forms.Scrape(ctx)
	o := e.Verify(x, pub, worker.Lives())
	e.Report(x, o)
	e.LogKills("forms/worker", kills)

	// What the forms stream had to do.
	want := formsFromWorker(t, e)
	expected := map[string]*completedForm{}
	for k, f := range want {
		if f.completed && f.assignment != wrongType {
			expected[k] = f
		}
	}
	if len(expected) < 8 {
		t.Fatalf("only %d completed forms reached the forms stream", len(expected))
	}

	// 1. One forms row per form response, keyed to the tracking table.
	formRows := formsTable(t, filepath.Join(e.FormsDir, "itel_cabinet_forms"))
	byKey := map[string]map[string]any{}
	for _, r := range formRows {
		k := fmt.Sprint(r["form_key"])
		if byKey[k] != nil {
			t.Errorf("form %s has two rows", k)
		}
		byKey[k] = r
	}
	missing, extra := harness.Diff(keysOf(expected), keysOf(byKey))
	if len(missing)+len(extra) > 0 {
		t.Fatalf("forms table: %d form responses without a row (e.g. %v), %d rows not expected (e.g. %v)", len(missing), harness.Head(missing), len(extra), harness.Head(extra))
	}
	for k, r := range byKey {
		if r["event_id"] == nil || r["event_id"] == "" {
			t.Errorf("form %s: no event_id", k)
		}
		if asInt(r["photo_count"]) != len(expected[k].photos) {
			t.Errorf("form %s: photo_count %v, the form has %d photos", k, r["photo_count"], len(expected[k].photos))
		}
	}
	for k, r := range byKey {
		switch expected[k].assignment {
		case unknownQ:
			oa, _ := r["other_answers"].([]delta.MapEntry)
			got := ""
			for _, kv := range oa {
				if kv.Key == claimxsim.UnknownQuestionGroup+" / "+claimxsim.UnknownQuestionText {
					got = fmt.Sprint(kv.Value)
				}
			}
			if got != claimxsim.UnknownQuestionAnswer {
				t.Errorf("form %s: the unknown question is not in other_answers: %v", k, oa)
			}
		case missingGroup:
			nulls := 0
			for _, p := range []string{"lower_", "upper_", "full_height_", "island_"} {
				if r[p+"cabinets_damaged"] == nil {
					nulls++
				}
			}
			if nulls == 0 {
				t.Errorf("form %s lost a cabinets group but every *_cabinets_damaged column has a value", k)
			}
		}
	}

	// 2. One attachment row per photo; the photos' bytes in storage.
	rejected := map[int64]string{emptyPhoto: "0 bytes", oversizePhoto: "exceeds"}
	attRows := formsTable(t, filepath.Join(e.FormsDir, "itel_cabinet_attachments"))
	seen := map[string]bool{}
	stored, bytesStored := map[int64]bool{}, int64(0)
	for _, r := range attRows {
		k := fmt.Sprint(r["attachment_key"])
		if seen[k] {
			t.Errorf("attachment %s has two rows", k)
		}
		seen[k] = true
		id := int64(asInt(r["media_id"]))
		status := fmt.Sprint(r["status"])
		if why, bad := rejected[id]; bad {
			if status != "rejected" || !strings.Contains(fmt.Sprint(r["reason"]), why) {
				t.Errorf("photo %d: status %s reason %v, want rejected with %q", id, status, r["reason"], why)
			}
			continue
		}
		if status != "stored" && status != "already_stored" {
			t.Errorf("photo %d: status %s (%v)", id, status, r["reason"])
			continue
		}
		if stored[id] {
			continue
		}
		stored[id] = true
		wantMedia, err := e.Sim.ExpectedMedia(id)
		if err != nil {
			t.Fatal(err)
		}
		n, sum := fileSHA256(t, fmt.Sprint(r["object_uri"]))
		if n != wantMedia.Size || sum != wantMedia.SHA256 || fmt.Sprint(r["sha256"]) != wantMedia.SHA256 {
			t.Errorf("photo %d: stored %d bytes sha256 %s (row says %v), ClaimX serves %d bytes sha256 %s", id, n, sum, r["sha256"], wantMedia.Size, wantMedia.SHA256)
		}
		bytesStored += n
	}
	wantAtt := 0
	for _, f := range expected {
		seenIDs := map[int64]bool{}
		for _, id := range f.photos {
			if !seenIDs[id] {
				wantAtt++
				seenIDs[id] = true
			}
			if !seen[fmt.Sprintf("%s:%d", f.key, id)] {
				t.Errorf("form %s: no attachment row for photo %d", f.key, id)
			}
		}
	}
	if len(attRows) != wantAtt {
		t.Errorf("%d attachment rows for %d photos of the forms", len(attRows), wantAtt)
	}
	refreshes := int64(0)
	for _, r := range attRows {
		refreshes += int64(asInt(r["link_refreshes"]))
	}
	t.Logf("expired links: %d refreshes recorded in the attachment rows (the links expired for 5 s; none rejected for it)", refreshes)
	objects := countFiles(t, filepath.Join(e.FormsDir, "itel_cabinet_attachment_files"))
	if objects != len(stored) {
		t.Errorf("%d objects in storage for %d stored photos: a redelivery stored one twice, or a partial file was left", objects, len(stored))
	}

	// 3. Exactly one accepted submission per form response.
	counts := e.Sim.ITelCounts()
	if counts.Accepted != len(expected) || counts.DuplicateForms != 0 || counts.Conflicts != 0 {
		t.Errorf("iTel: %+v; want %d accepted, no duplicate form, no conflict", counts, len(expected))
	}
	for _, s := range e.Sim.ITelSubmissions() {
		if expected[s.AssignmentID+":"+s.FormResponseID] == nil {
			t.Errorf("iTel accepted a submission for %s:%s, not a form of the run", s.AssignmentID, s.FormResponseID)
		}
	}
	subRows := formsTable(t, filepath.Join(e.FormsDir, "itel_cabinet_submissions"))
	subKeys := map[string]bool{}
	for _, r := range subRows {
		k := fmt.Sprint(r["form_key"])
		if subKeys[k] {
			t.Errorf("form %s has two submission rows", k)
		}
		subKeys[k] = true
		if r["status"] != "accepted" || r["itel_reference"] == nil {
			t.Errorf("form %s: submission %v (reference %v, error %v)", k, r["status"], r["itel_reference"], r["error"])
		}
	}
	if len(subKeys) != len(expected) {
		t.Errorf("%d submission rows for %d forms", len(subKeys), len(expected))
	}

	// 4. The forms errors topic: exactly the bad corpus, each named.
	byStage := map[string][]string{}
	for _, r := range e.ConsumeAll(e.Names.FormsErrors) {
		var m struct{ Stage, Error string }
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("forms error at offset %d: %v", r.Offset, err)
		}
		byStage[m.Stage] = append(byStage[m.Stage], m.Error)
	}
	wrongKeys := 0
	for _, f := range want {
		if f.assignment == wrongType {
			wrongKeys++
		}
	}
	if got := byStage["form"]; len(got) != wrongKeys || wrongKeys == 0 {
		t.Errorf("stage form errors %q, want %d for assignment %d", got, wrongKeys, wrongType)
	}
	for _, msg := range byStage["form"] {
		if !strings.Contains(msg, fmt.Sprint(wrongType)) || !strings.Contains(msg, "about ten") {
			t.Errorf("form error %q names neither the assignment nor the answer", msg)
		}
	}
	wantPhotoErrs := 0
	for _, f := range expected {
		for _, id := range f.photos {
			if _, bad := rejected[id]; bad {
				wantPhotoErrs++
			}
		}
	}
	if wantPhotoErrs == 0 {
		t.Errorf("no form of the run holds photo %d or %d: the bad-photo corpus was not exercised", emptyPhoto, oversizePhoto)
	}
	if got := byStage["photos"]; len(got) != wantPhotoErrs {
		t.Errorf("stage photos errors %q, want %d", got, wantPhotoErrs)
	}
	for stage, msgs := range byStage {
		if stage != "form" && stage != "photos" {
			t.Errorf("%d errors at stage %s, none expected (a dependency's failure must hold): %q", len(msgs), stage, harness.Head(msgs))
		}
	}

	// 5. Spark, delta-rs and DuckDB read the three tables as our engine does.
	checkFormsReaders(t, e.FormsDir)

	// 6. The outage held the stream, and what a form cost.
	// Forms met the outage (503s), and were accepted after it, once each.
	if counts.Unavailable == 0 || counts.Accepted <= accepted0 {
		t.Errorf("iTel answered %d 503s and accepted %d submissions after its outage began: the outage met no form (%+v)", counts.Unavailable, counts.Accepted-accepted0, counts)
	}
	t.Logf("forms stream, last life: %s", harness.FmtMetrics(fm))
	// SIGKILL records the last life's CPU too.
	forms.KillQuietly()
	var cpu time.Duration
	for _, l := range forms.Lives() {
		cpu += l.CPU
	}
	st := e.Sim.Stats()
	reqs := st.ByEndpoint["media"] + st.ByEndpoint["media_download"] + st.ByEndpoint["itel"]
	t.Logf("FIGURES forms: %d forms, %d photos stored (%d bytes), %d rejected; iTel %+v; %d forms-stream lives in %s; per completed form: CPU %.1f ms, %.1f requests (media lists %d, downloads %d, iTel %d), %.0f bytes stored",
		len(expected), len(stored), bytesStored, countStatus(attRows, "rejected"), counts, len(forms.Lives()), time.Since(began).Round(time.Second),
		float64(cpu.Milliseconds())/float64(len(expected)), float64(reqs)/float64(len(expected)),
		st.ByEndpoint["media"], st.ByEndpoint["media_download"], st.ByEndpoint["itel"], float64(bytesStored)/float64(len(expected)))
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func countStatus(rows []map[string]any, status string) int {
	n := 0
	for _, r := range rows {
		if r["status"] == status {
			n++
		}
	}
	return n
}

func fileSHA256(t *testing.T, path string) (int64, string) {
	t.Helper()
	path = strings.TrimPrefix(path, "file://")
	f, err := os.Open(path)
	if err != nil {
		t.Errorf("stored photo: %v", err)
		return 0, ""
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

func countFiles(t *testing.T, root string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(root, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
