package claimxsim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// ITelTemplateID is the task template of the iTel Cabinet Repair Form, the one
// the pipelines track (DOMAIN.md §3).
const ITelTemplateID = 32513

// Assignment status values as the pipelines normalise them (DOMAIN.md §3).
const (
	StatusAssigned   = "ASSIGNED"
	StatusInProgress = "IN_PROGRESS"
	StatusCompleted  = "COMPLETED"
	StatusCancelled  = "CANCELLED"
)

// template is one ClaimX custom task template the simulator hands out.
type template struct {
	id       int
	name     string
	formID   string
	formName string
}

var templates = []template{
	{id: ITelTemplateID, name: "iTel Cabinet Repair Form", formID: "69417fcfa5e6b152c25253d0", formName: "iTel Cabinet Repair Form"},
	{id: 24871, name: "Water Mitigation Moisture Log", formID: "5f1a0c9e2b7d4e0012a3b4c5", formName: "Moisture Log"},
	{id: 19204, name: "Contents Inventory", formID: "60b2d7e81c9f3a0013c4d5e6", formName: "Contents Inventory"},
	{id: 30077, name: "Roof Inspection Checklist", formID: "63c4e9f03d1b5c0014d6e7f8", formName: "Roof Inspection"},
}

// Assignment summarises one seeded assignment, so that an event generator can
// publish events that match what the simulator will answer.
type Assignment struct {
	AssignmentID int64  `json:"assignment_id"`
	ProjectID    int64  `json:"project_id"`
	TaskID       int    `json:"task_id"`
	TaskName     string `json:"task_name"`
	// Status is the effective status in upper case (an assignment with a
	// cancelledDate is CANCELLED), whatever spelling the API body uses.
	Status        string    `json:"status"`
	DateAssigned  time.Time `json:"date_assigned"`
	DateCompleted time.Time `json:"date_completed,omitzero"`
	CancelledDate time.Time `json:"cancelled_date,omitzero"`
}

// dataset is the seeded, read-only content of the simulated API.
type dataset struct {
	assignments []Assignment
	// bodies are the JSON-ready 200 bodies, built once so every request for
	// the same id returns byte-identical content.
	assignmentBody map[int64]map[string]any
	projectBody    map[int64]map[string]any
	projectMedia   map[int64][]map[string]any
}

const apiTimeLayout = "2006-01-02T15:04:05.000Z"

func apiTime(t time.Time) string { return t.UTC().Format(apiTimeLayout) }

var (
	firstNames = []string{"Maria", "James", "Aisha", "Chen", "Olivia", "Diego", "Fatima", "Liam", "Sofia", "Noah"}
	lastNames  = []string{"Garcia", "Smith", "Khan", "Wang", "Johnson", "Lopez", "Ali", "Brown", "Rossi", "Miller"}
	streets    = []string{"Oak St", "Maple Ave", "Cedar Ln", "Pine Rd", "Elm Dr", "Birch Ct"}
	cities     = []string{"Austin|TX|787", "Tampa|FL|336", "Denver|CO|802", "Columbus|OH|432", "Raleigh|NC|276"}
	losses     = []string{"Water|Pipe burst", "Water|Appliance leak", "Fire|Kitchen fire", "Wind|Storm", "Water|Roof leak"}
	counters   = []string{"Laminate", "Granite", "Quartz", "Marble", "Butcher Block", "Concrete", "Tile", "Solid Surface"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func hexID(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for range n {
		b.WriteByte(digits[r.IntN(16)])
	}
	return b.String()
}

// newDataset builds n assignments deterministically from seed: the same seed
// and n always give the same ids, states and bodies.
func newDataset(seed int64, n int) *dataset {
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	d := &dataset{
		assignmentBody: map[int64]map[string]any{},
		projectBody:    map[int64]map[string]any{},
		projectMedia:   map[int64][]map[string]any{},
	}
	base := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	nextMedia := int64(91000000)

	var projectID int64
	leftInProject := 0
	for i := range n {
		if leftInProject == 0 {
			projectID = 4895000 + int64(len(d.projectBody))*7 + int64(r.IntN(7))
			leftInProject = 1 + r.IntN(3)
			d.projectBody[projectID] = projectExport(r, projectID, base.Add(time.Duration(i)*47*time.Minute))
		}
		leftInProject--

		// About 60 % of assignments use the iTel template so that a local run
		// has plenty to track, and the rest exercise the "other template" path.
		tpl := templates[0]
		if r.Float64() >= 0.6 {
			tpl = templates[1+r.IntN(len(templates)-1)]
		}
		a := Assignment{
			AssignmentID: 5423000 + int64(i)*3 + int64(r.IntN(3)),
			ProjectID:    projectID,
			TaskID:       tpl.id,
			TaskName:     tpl.name,
			DateAssigned: base.Add(time.Duration(i)*53*time.Minute + time.Duration(r.IntN(3_600_000))*time.Millisecond),
		}
		switch x := r.Float64(); {
		case x < 0.25:
			a.Status = StatusAssigned
		case x < 0.45:
			a.Status = StatusInProgress
		case x < 0.85:
			a.Status = StatusCompleted
			a.DateCompleted = a.DateAssigned.Add(time.Duration(10+r.IntN(600))*time.Minute + time.Duration(r.IntN(60_000))*time.Millisecond)
		default:
			a.Status = StatusCancelled
			a.CancelledDate = a.DateAssigned.Add(time.Duration(5+r.IntN(2000)) * time.Minute)
		}

		var media []int64
		body := assignmentBody(r, a, tpl, &nextMedia, &media)
		d.assignmentBody[a.AssignmentID] = body
		for _, id := range media {
			d.projectMedia[projectID] = append(d.projectMedia[projectID], mediaBody(r, id, a))
		}
		d.assignments = append(d.assignments, a)
	}
	return d
}

func assignmentBody(r *rand.Rand, a Assignment, tpl template, nextMedia *int64, media *[]int64) map[string]any {
	first, last := pick(r, firstNames), pick(r, lastNames)
	assignor := r.IntN(900)
	status := a.Status
	cancelled := any(nil)
	if a.Status == StatusCancelled {
		cancelled = apiTime(a.CancelledDate)
		// Some cancelled assignments keep their previous status: the
		// cancelledDate alone marks them cancelled (DOMAIN.md §3).
		if r.IntN(3) == 0 {
			status = StatusAssigned
		}
	}
	// The real API is not consistent about case; the pipelines normalise it.
	if r.IntN(10) == 0 {
		status = strings.ToLower(status)
	}
	var completed, formResponseID, response any
	if a.Status == StatusInProgress || a.Status == StatusCompleted {
		formResponseID = hexID(r, 24)
	}
	if a.Status == StatusCompleted {
		completed = apiTime(a.DateCompleted)
		if tpl.id == ITelTemplateID {
			response = cabinetResponse(r, nextMedia, media)
		} else {
			response = genericResponse(r, tpl)
		}
	}
	return map[string]any{
		"assignmentId":   a.AssignmentID,
		"taskId":         tpl.id,
		"taskName":       tpl.name,
		"projectId":      a.ProjectID,
		"formId":         tpl.formID,
		"formResponseId": formResponseID,
		"status":         status,
		"assigneeId":     80000 + r.IntN(20000),
		"assignorId":     10000 + assignor,
		"assignor":       fmt.Sprintf("adjuster%d@carrier.example", assignor),
		"dateAssigned":   apiTime(a.DateAssigned),
		"dateCompleted":  completed,
		"cancelledDate":  cancelled,
		"customTask": map[string]any{
			"taskId":   tpl.id,
			"name":     tpl.name,
			"formId":   tpl.formID,
			"formName": tpl.formName,
			"active":   true,
		},
		"externalLinkData": map[string]any{
			"url":       "https://www.claimxperience.com/ext/" + hexID(r, 16),
			"firstName": first,
			"lastName":  last,
			"email":     strings.ToLower(first+"."+last) + "@mail.example",
			"phone":     fmt.Sprintf("555-01%02d", r.IntN(100)),
		},
		"response": response,
	}
}

func question(r *rand.Rand, text, component string, answer map[string]any) map[string]any {
	return map[string]any{
		"questionText":         text,
		"component":            component,
		"formControl":          map[string]any{"id": "ctl_" + hexID(r, 8)},
		"responseAnswerExport": answer,
	}
}

func optionQ(r *rand.Rand, text string, options ...string) map[string]any {
	o := pick(r, options)
	return question(r, text, "radio", map[string]any{"type": "option", "text": o, "optionAnswer": map[string]any{"name": o}})
}

func numberQ(r *rand.Rand, text string, v float64) map[string]any {
	return question(r, text, "number", map[string]any{"type": "number", "text": fmt.Sprint(v), "numberAnswer": map[string]any{"value": v}})
}

func textQ(r *rand.Rand, text, v string) map[string]any {
	return question(r, text, "textarea", map[string]any{"type": "text", "text": v})
}

func imageQ(r *rand.Rand, text string, nextMedia *int64, media *[]int64) map[string]any {
	ids := []any{}
	for range 1 + r.IntN(3) {
		*nextMedia += int64(1 + r.IntN(5))
		ids = append(ids, *nextMedia)
		*media = append(*media, *nextMedia)
	}
	return question(r, text, "image", map[string]any{"type": "image", "claimMediaIds": ids})
}

// cabinetResponse builds the answers of a completed iTel Cabinet Repair Form
// (DOMAIN.md §8).
func cabinetResponse(r *rand.Rand, nextMedia *int64, media *[]int64) map[string]any {
	yesNo := []string{"Yes", "No"}
	groups := []any{}
	for gi, kind := range []string{"Lower", "Upper", "Full Height / Pantry", "Island"} {
		qs := []any{optionQ(r, kind+" cabinets damaged?", yesNo...)}
		qs = append(qs,
			numberQ(r, kind+" cabinets linear feet", float64(2+r.IntN(30))),
			numberQ(r, "Number of damaged "+strings.ToLower(kind)+" boxes", float64(r.IntN(8))),
			optionQ(r, kind+" cabinets detached?", yesNo...),
			optionQ(r, kind+" face frames, doors and drawers available?", "Yes", "No", "Disposed Of"),
			optionQ(r, kind+" face frames, doors and drawers damaged?", yesNo...),
			optionQ(r, kind+" finished end panels damaged?", yesNo...),
			optionQ(r, kind+" end panel damage present?", yesNo...),
		)
		if kind == "Lower" || kind == "Island" {
			qs = append(qs, optionQ(r, kind+" counter type", counters...))
		}
		groups = append(groups, map[string]any{"name": kind + " Cabinets", "groupId": fmt.Sprintf("grp_%d", gi+1), "questionAndAnswers": qs})
	}
	groups = append(groups,
		map[string]any{"name": "Countertops", "groupId": "grp_5", "questionAndAnswers": []any{
			numberQ(r, "Countertop linear feet", float64(4+r.IntN(40))),
		}},
		map[string]any{"name": "Damage Details", "groupId": "grp_6", "questionAndAnswers": []any{
			textQ(r, "Damage description", pick(r, []string{"Water wicked into toe kicks and side panels.", "Swelling at base of sink cabinet.", "Delamination on island end panel."})),
			textQ(r, "Additional notes", pick(r, []string{"", "Homeowner available weekdays after 3pm.", "Matching doors discontinued."})),
		}},
		map[string]any{"name": "Photos", "groupId": "grp_7", "questionAndAnswers": []any{
			imageQ(r, "Overview photos", nextMedia, media),
			imageQ(r, "Cabinet damage photos", nextMedia, media),
			imageQ(r, "Countertop photos", nextMedia, media),
		}},
	)
	return map[string]any{"groups": groups}
}

func genericResponse(r *rand.Rand, tpl template) map[string]any {
	return map[string]any{"groups": []any{map[string]any{
		"name": tpl.formName, "groupId": "grp_1", "questionAndAnswers": []any{
			textQ(r, "Notes", "Completed on site."),
			numberQ(r, "Items recorded", float64(r.IntN(50))),
		},
	}}}
}

func projectExport(r *rand.Rand, id int64, created time.Time) map[string]any {
	first, last := pick(r, firstNames), pick(r, lastNames)
	city := strings.Split(pick(r, cities), "|")
	loss := strings.Split(pick(r, losses), "|")
	return map[string]any{"data": map[string]any{
		"project": map[string]any{
			"projectId":     id,
			"projectNumber": fmt.Sprintf("CLM-%d-%04d", created.Year(), r.IntN(10000)),
			"status":        pick(r, []string{"Open", "Open", "Closed"}),
			"dateOfLoss":    apiTime(created.Add(-time.Duration(24+r.IntN(240)) * time.Hour)),
			"typeOfLoss":    loss[0],
			"causeOfLoss":   loss[1],
			"customerInformation": map[string]any{
				"firstName": first, "lastName": last,
				"email": strings.ToLower(first+"."+last) + "@mail.example",
				"phone": fmt.Sprintf("555-02%02d", r.IntN(100)),
			},
			"address": map[string]any{
				"street": fmt.Sprintf("%d %s", 100+r.IntN(9000), pick(r, streets)),
				"city":   city[0], "state": city[1], "zip": fmt.Sprintf("%s%02d", city[2], r.IntN(100)),
			},
		},
		"teamMembers": []any{
			map[string]any{"userId": 10000 + r.IntN(900), "name": pick(r, firstNames) + " " + pick(r, lastNames), "role": "Adjuster"},
			map[string]any{"userId": 80000 + r.IntN(20000), "name": pick(r, firstNames) + " " + pick(r, lastNames), "role": "Contractor"},
		},
		"companyName": "Example Mutual Insurance",
	}}
}

func mediaBody(r *rand.Rand, id int64, a Assignment) map[string]any {
	taken := a.DateCompleted.Add(-time.Duration(1+r.IntN(60)) * time.Minute)
	return map[string]any{
		"mediaID":          id,
		"taskAssignmentId": a.AssignmentID,
		"mediaType":        "image/jpeg",
		"mediaName":        fmt.Sprintf("IMG_%d.jpg", id),
		"takenDate":        apiTime(taken),
		"fullDownloadLink": fmt.Sprintf("https://media.claimx.example/%d/%s", id, hexID(r, 32)),
		"expiresAt":        apiTime(a.DateCompleted.Add(7 * 24 * time.Hour)),
	}
}
