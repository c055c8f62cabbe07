package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/reasons"
)

// formsSummary is what the forms stream did in a dev run, read back from its
// tables, its photos directory, its errors topic and the simulated iTel API.
type formsSummary struct {
	Successes       int64 // messages on the forms success topic
	Rows            int   // rows of itel_cabinet_forms
	FormKeys        int   // distinct form responses among them
	Photos          int   // attachment rows
	PhotosStored    int   // … stored (this run or an earlier delivery)
	PhotosRejected  int   // … rejected (0 bytes, oversize, not an image, gone)
	Objects         int   // files in the photos directory
	ObjectBytes     int64 // their bytes
	ObjectsVerified int   // stored photos whose bytes match the simulator's SHA-256
	ObjectsBad      []string
	Submissions     int // rows of itel_cabinet_submissions
	SubAccepted     int // … accepted (or replayed) by iTel
	SubRejected     int
	ITel            claimxsim.ITelCounts
	ErrorsByStage   map[string]int
	ErrorsByReason  map[string]int
}

// readTableMaps reads every live row of the Delta table at dir, keyed by
// column name; a missing table has no rows.
func readTableMaps(ctx context.Context, dir string) ([]map[string]any, error) {
	if _, err := os.Stat(filepath.Join(dir, "_delta_log")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	st, err := storage.NewLocal(dir)
	if err != nil {
		return nil, err
	}
	tbl, err := delta.Open(ctx, st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("opening the table %s: %w", dir, err)
	}
	snap := tbl.Snapshot()
	names := snap.Schema().Names()
	var out []map[string]any
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, st, f)
		if err != nil {
			return nil, fmt.Errorf("reading the table %s: %w", dir, err)
		}
		for _, r := range rows {
			m := make(map[string]any, len(names))
			for i, n := range names {
				m[n] = r[i]
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func (d *devRun) summariseForms(ctx context.Context, sim *claimxsim.Server) (formsSummary, error) {
	s := formsSummary{ErrorsByStage: map[string]int{}, ErrorsByReason: map[string]int{}}
	var err error
	if s.Successes, err = d.topicCount(ctx, devFormsSuccessTopic); err != nil {
		return s, err
	}
	forms, err := readTableMaps(ctx, d.formsPath(devFormsTableDir))
	if err != nil {
		return s, err
	}
	keys := map[string]bool{}
	for _, r := range forms {
		keys[fmt.Sprint(r["form_key"])] = true
	}
	s.Rows, s.FormKeys = len(forms), len(keys)

	photos, err := readTableMaps(ctx, d.formsPath(devAttachmentsTableDir))
	if err != nil {
		return s, err
	}
	s.Photos = len(photos)
	for _, r := range photos {
		switch r["status"] {
		case "rejected":
			s.PhotosRejected++
		default:
			s.PhotosStored++
			s.verifyObject(sim, r)
		}
	}
	root := d.formsPath(devPhotosDir)
	_ = filepath.WalkDir(root, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				s.Objects++
				s.ObjectBytes += info.Size()
			}
		}
		return nil
	})

	subs, err := readTableMaps(ctx, d.formsPath(devSubmissionsTableDir))
	if err != nil {
		return s, err
	}
	s.Submissions = len(subs)
	for _, r := range subs {
		if r["status"] == "accepted" {
			s.SubAccepted++
		} else {
			s.SubRejected++
		}
	}
	s.ITel = sim.ITelCounts()

	errs, err := d.readAll(ctx, devFormsErrorsTopic)
	if err != nil {
		return s, err
	}
	for _, v := range errs {
		var m struct{ Error, Stage string }
		if json.Unmarshal(v, &m) != nil {
			m.Error, m.Stage = "(unreadable error message)", "?"
		}
		s.ErrorsByStage[m.Stage]++
		// "form 5423001:6962d0…: photo 9 rejected: media 9: 0 bytes" is one
		// kind whatever the form: drop the form's key before classifying.
		if rest, ok := strings.CutPrefix(m.Error, "form "); ok {
			if _, after, found := strings.Cut(rest, ": "); found {
				m.Error = after
			}
		}
		s.ErrorsByReason[m.Stage+": "+reasons.Class(m.Error)]++
	}
	return s, nil
}

// verifyObject checks that a stored photo's object holds the simulator's
// bytes: its size and SHA-256, computed from the file, not the row.
func (s *formsSummary) verifyObject(sim *claimxsim.Server, r map[string]any) {
	id, _ := strconv.ParseInt(fmt.Sprint(r["media_id"]), 10, 64)
	bad := func(why string) { s.ObjectsBad = append(s.ObjectsBad, fmt.Sprintf("media %d: %s", id, why)) }
	want, err := sim.ExpectedMedia(id)
	if err != nil {
		bad(err.Error())
		return
	}
	path, _ := r["object_uri"].(string)
	path = strings.TrimPrefix(path, "file://")
	f, err := os.Open(path)
	if err != nil {
		bad(err.Error())
		return
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		bad(err.Error())
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != want.Size || got != want.SHA256 {
		bad(fmt.Sprintf("stored %d bytes sha256 %s, served %d bytes sha256 %s", n, got, want.Size, want.SHA256))
		return
	}
	if fmt.Sprint(r["sha256"]) != want.SHA256 {
		bad("the row's sha256 differs from the bytes'")
		return
	}
	s.ObjectsVerified++
}

func (s formsSummary) print(w io.Writer) {
	fmt.Fprintln(w, "── forms, photos, submissions ──────────────────────────")
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "forms written\t%d\t(%d form responses; %d result messages on %s)\n", s.Rows, s.FormKeys, s.Successes, devFormsSuccessTopic)
	fmt.Fprintf(tw, "photos\t%d\t(%d stored, %d rejected; %d objects, %d bytes in %s)\n", s.Photos, s.PhotosStored, s.PhotosRejected, s.Objects, s.ObjectBytes, devPhotosDir)
	fmt.Fprintf(tw, "submissions\t%d\t(%d accepted, %d rejected; iTel: %d accepted, %d replays, %d duplicate forms)\n",
		s.Submissions, s.SubAccepted, s.SubRejected, s.ITel.Accepted, s.ITel.Replays, s.ITel.DuplicateForms)
	total := 0
	for _, n := range s.ErrorsByStage {
		total += n
	}
	fmt.Fprintf(tw, "errors\t%d\t(on %s)\n", total, devFormsErrorsTopic)
	tw.Flush()
	kinds := make([]string, 0, len(s.ErrorsByReason))
	for r := range s.ErrorsByReason {
		kinds = append(kinds, r)
	}
	sort.Strings(kinds)
	for _, r := range kinds {
		fmt.Fprintf(w, "  %5d  %s\n", s.ErrorsByReason[r], r)
	}
	if p := s.problem(); p != "" {
		fmt.Fprintf(w, "✘ %s\n", p)
		return
	}
	fmt.Fprintf(w, "✔ one forms row per form response (%d), every stored photo byte-equal to ClaimX's (%d), one accepted iTel submission per form (%d)\n",
		s.FormKeys, s.ObjectsVerified, s.ITel.Accepted)
}

// problem says what breaks the forms stream's promises, "" when nothing.
func (s formsSummary) problem() string {
	switch {
	case s.Rows != s.FormKeys:
		return fmt.Sprintf("the forms table holds %d rows for %d form responses", s.Rows, s.FormKeys)
	case len(s.ObjectsBad) > 0:
		return fmt.Sprintf("%d stored photos differ from ClaimX's bytes, e.g. %s", len(s.ObjectsBad), s.ObjectsBad[0])
	case s.ITel.DuplicateForms > 0:
		return fmt.Sprintf("iTel accepted %d form responses twice", s.ITel.DuplicateForms)
	case s.SubAccepted != s.ITel.Accepted:
		return fmt.Sprintf("the submissions table holds %d accepted submissions, iTel accepted %d", s.SubAccepted, s.ITel.Accepted)
	case s.SubRejected > 0:
		return fmt.Sprintf("iTel rejected %d submissions of valid forms", s.SubRejected)
	case s.Submissions != s.FormKeys:
		return fmt.Sprintf("the submissions table holds %d rows for %d form responses", s.Submissions, s.FormKeys)
	}
	return ""
}
