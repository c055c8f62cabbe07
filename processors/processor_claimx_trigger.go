package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	ctpFieldAssignmentField    = "assignment_field"
	ctpFieldTriggers           = "triggers"
	ctpFieldTaskID             = "task_id"
	ctpFieldName               = "name"
	ctpFieldIncludeTaskData    = "include_task_data"
	ctpFieldIncludeProjectData = "include_project_data"
	ctpFieldOnAny              = "on_any"
	ctpFieldOnAssigned         = "on_assigned"
	ctpFieldOnCompleted        = "on_completed"
	ctpFieldPublishToTopic     = "publish_to_topic"
	ctpFieldLog                = "log"
	ctpFieldLevel              = "level"
	ctpFieldMessage            = "message"
)

// Metadata the claimx_trigger processor sets on a tracking message.
const (
	// TriggerMetaPublishTopic is the topic of the block that fired.
	TriggerMetaPublishTopic = "publish_topic"
	// TriggerMetaIncludeProject is "true" when the template asks for the
	// project, else "false".
	TriggerMetaIncludeProject = "include_project"
	// TriggerMetaLogMessage is the logged tracking line ("" without a log).
	TriggerMetaLogMessage = "log_message"
)

// The event types with a block of their own; any other type (and these,
// without their block) takes on_any.
const (
	ctpEventAssigned  = "CUSTOM_TASK_ASSIGNED"
	ctpEventCompleted = "CUSTOM_TASK_COMPLETED"
)

// ctpBlocks are the block fields, in the order lints name them.
var ctpBlocks = []string{ctpFieldOnAny, ctpFieldOnAssigned, ctpFieldOnCompleted}

// ctpLevels are the log levels a block may name (case-insensitive).
var ctpLevels = []string{"debug", "info", "warn", "error"}

// ctpPlaceholders are the fields of the tracking message a log message may
// name as {field}.
var ctpPlaceholders = []string{
	"event_id", "event_type", "task_id", "assignment_id", "project_id",
	"task_status", "task_name", "trigger_name", "timestamp",
}

// ctpPlaceholderRe finds {name} in a log message: braces around a run of
// anything but braces and white space.
var ctpPlaceholderRe = regexp.MustCompile(`\{([^{}\s]+)\}`)

// ctpQuoted renders names for a description or a Bloblang array literal.
func ctpQuoted(names []string, wrap func(string) string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = wrap(n)
	}
	return strings.Join(out, ", ")
}

func ctpPlaceholderList() string {
	return ctpQuoted(ctpPlaceholders, func(s string) string { return "{" + s + "}" })
}

// ctpLintRule is the Bloblang lint over the processor's config. It says the
// same as newClaimxTriggerFromConfig, in the same words.
func ctpLintRule() string {
	q := func(s string) string { return strconv.Quote(s) }
	return fmt.Sprintf(`
let levels = [ %[1]s ]
let fields = [ %[2]s ]
let blocks = [ %[3]s ]
let ts = this.%[4]s.or([]).enumerated()
root = if this.%[4]s.type() == "array" && $ts.length() == 0 {
  [ %[5]q ]
} else {
  $ts.map_each(e -> e.value.(t -> "%[4]s[%%d] (task_id %%v)".format(e.index, t.%[6]s).(at -> [
    if $blocks.all(b -> t.get(b) == null) { "%%s: %[7]s".format(at) },
    if t.%[6]s != null && $ts.any(o -> o.index < e.index && o.value.%[6]s == t.%[6]s) {
      "%%s: task_id %%v is already configured by %[4]s[%%d]".format(at, t.%[6]s, $ts.filter(o -> o.index < e.index && o.value.%[6]s == t.%[6]s).index(0).index)
    },
    $blocks.filter(b -> t.get(b) != null).map_each(b -> t.get(b).(k -> [
      if k.%[8]s.or("").string().trim() == "" { "%%s %%s: %[9]s".format(at, b) },
      if k.%[10]s.%[11]s != null && !$levels.contains(k.%[10]s.%[11]s.string().lowercase()) {
        "%%s %%s: log level %%q is not one of %[12]s".format(at, b, k.%[10]s.%[11]s.string())
      },
      k.%[10]s.%[13]s.or("").string().re_find_all_submatch(%[14]q).filter(m -> !$fields.contains(m.index(1))).map_each(m -> "%%s %%s: log message placeholder %%s names no field of the tracking message (use %[15]s)".format(at, b, m.index(0))),
    ].flatten())).flatten(),
  ].flatten()))).flatten()
}
`,
		ctpQuoted(ctpLevels, q), ctpQuoted(ctpPlaceholders, q), ctpQuoted(ctpBlocks, q),
		ctpFieldTriggers, ctpErrNoTriggers, ctpFieldTaskID, ctpErrNoBlock,
		ctpFieldPublishToTopic, ctpErrNoTopic, ctpFieldLog, ctpFieldLevel,
		strings.Join(ctpLevels, ", "), ctpFieldMessage, ctpPlaceholderRe.String(), ctpPlaceholderList())
}

// Problems the lint rule and the constructor report in the same words.
const (
	ctpErrNoTriggers = "triggers is empty: name at least one task template"
	ctpErrNoBlock    = "no on_any, on_assigned or on_completed block, so it never fires"
	ctpErrNoTopic    = "publish_to_topic is missing or empty"
)

func claimxTriggerConfigSpec() *service.ConfigSpec {
	logField := func() *service.ConfigField {
		return service.NewObjectField(ctpFieldLog,
			service.NewStringField(ctpFieldLevel).
				Description("The level of the line: "+strings.Join(ctpLevels, ", ")+" (any case).").
				Default("info"),
			service.NewStringField(ctpFieldMessage).
				Description("The line. `{field}` is replaced by that field of the tracking message: "+ctpPlaceholderList()+"."),
		).Description("The tracking line the processor logs; without it nothing is logged.").Optional()
	}
	block := func(name, when string) *service.ConfigField {
		return service.NewObjectField(name,
			service.NewStringField(ctpFieldPublishToTopic).
				Description("The topic of the tracking message (metadata `"+TriggerMetaPublishTopic+"`; the output publishes to it)."),
			logField(),
		).Description(when).Optional()
	}
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Version("0.1.0").
		Summary("Keeps the ClaimX task events whose task template has a trigger, and turns each into the tracking message, with its topic and its log line.").
		Description(`
The trigger of DOMAIN.md §3, configured as plain data: a list of task templates, each with the
blocks that fire for it. It reads a message holding the event as the trigger stream's
`+"`read_event`"+` step leaves it (`+"`event_id`, `event_type`, `project_id`, `assignment_id`, `event_time`"+`)
and the assignment a `+"`claimx_lookup`"+` put under `+"`"+ctpFieldAssignmentField+"`"+`:

- The assignment is null or missing (the API answered 404): the message fails with
  `+"`event <event_id>: assignment <assignment_id> is not known to the ClaimX API (404)`"+`.
- Its template (`+"`taskId`"+`, else `+"`customTask.taskId`"+`) has no trigger, or the trigger has no block
  for the event: the message is dropped, without error. The block for the event is `+"`on_assigned`"+`
  for CUSTOM_TASK_ASSIGNED and `+"`on_completed`"+` for CUSTOM_TASK_COMPLETED when present, else `+"`on_any`"+`.
- Otherwise the message becomes the tracking message (`+"`trigger_name`, `event_id`, `event_type`,\n"+
			"`project_id`, `task_id`, `assignment_id`, `task_name`, `task_status`, `timestamp`, `published_at`,\n"+
			"`task`, `project`"+`), with the metadata `+"`"+TriggerMetaPublishTopic+"`"+` (the block's topic),
  `+"`"+TriggerMetaIncludeProject+"`"+` (`+"`true`/`false`"+`) and `+"`"+TriggerMetaLogMessage+"`"+`, and the block's log line is
  logged at its level.

`+"`task_status`"+` is the assignment's status in upper case with spaces and dashes as underscores,
or CANCELLED when it has a `+"`cancelledDate`"+`. `+"`project_id`"+` is the event's, else the
assignment's `+"`projectId`"+`. `+"`task`"+` is the assignment in snake_case when
`+"`"+ctpFieldIncludeTaskData+"`"+`, else null; `+"`project`"+` is null (a later step fills it when
`+"`"+TriggerMetaIncludeProject+"`"+` is true).

Lint and the constructor refuse a config that cannot work as meant: an empty `+"`triggers`"+`, a
task_id configured twice, a template without a block, a block whose `+"`publish_to_topic`"+` is
empty, a log level other than `+strings.Join(ctpLevels, ", ")+`, and a `+"`{placeholder}`"+` that names no
field of the tracking message (`+ctpPlaceholderList()+`).`).
		Fields(
			service.NewStringField(ctpFieldAssignmentField).
				Description("The top-level field holding the assignment the lookup returned; null when the API answered 404.").
				Default("claimx_assignment"),
			service.NewObjectListField(ctpFieldTriggers,
				service.NewIntField(ctpFieldTaskID).Description("The task template id (`taskId` of the assignment)."),
				service.NewStringField(ctpFieldName).Description("The trigger's name: `trigger_name` of the message and its `x-trigger-name` header."),
				service.NewBoolField(ctpFieldIncludeTaskData).Description("Add the assignment as the `task` object.").Default(true),
				service.NewBoolField(ctpFieldIncludeProjectData).Description("Ask for the project (metadata `"+TriggerMetaIncludeProject+"`).").Default(false),
				block(ctpFieldOnAny, "Fires on every task event of the template that has no block of its own."),
				block(ctpFieldOnAssigned, "Fires on CUSTOM_TASK_ASSIGNED."),
				block(ctpFieldOnCompleted, "Fires on CUSTOM_TASK_COMPLETED."),
			).Description("The task templates to track, one entry each."),
		).
		LintRule(ctpLintRule()).
		Example("The iTel Cabinet trigger", "Template 32513 on every task event, with the tracking line the runbook greps for.", `
pipeline:
  processors:
    - claimx_trigger:
        triggers:
          - task_id: 32513
            name: iTel Cabinet Repair Form Task
            on_any:
              publish_to_topic: itel.cabinet.task.tracking
              log:
                level: info
                message: "iTel Cabinet task event tracked | event_id={event_id} | task_id={task_id} | assignment_id={assignment_id} | status={task_status}"
`).
		Example("A second template, routed by event type", "Assigned and completed events of template 40001 go to two topics; the project is looked up for them.", `
pipeline:
  processors:
    - claimx_trigger:
        triggers:
          - task_id: 32513
            name: iTel Cabinet Repair Form Task
            on_any: { publish_to_topic: itel.cabinet.task.tracking }
          - task_id: 40001
            name: Water Mitigation Checklist
            include_project_data: true
            on_assigned:
              publish_to_topic: water.mitigation.assigned
            on_completed:
              publish_to_topic: water.mitigation.completed
              log: { level: warn, message: "water mitigation done | project_id={project_id} | assignment_id={assignment_id}" }
`)
}

func init() {
	service.MustRegisterProcessor("claimx_trigger", claimxTriggerConfigSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.Processor, error) {
			return newClaimxTriggerFromConfig(conf, res.Logger())
		})
}

// ctpTrigger is one configured task template.
type ctpTrigger struct {
	taskID         int64
	name           string
	includeTask    bool
	includeProject bool
	onAny          *ctpBlock
	onAssigned     *ctpBlock
	onCompleted    *ctpBlock
}

// ctpBlock is what fires: the topic and, optionally, the log line.
type ctpBlock struct {
	topic string
	log   *ctpLog
}

// ctpLog is a log line compiled into literal text and placeholders.
type ctpLog struct {
	level string // one of ctpLevels
	parts []ctpPart
}

// ctpPart is literal text, or (field != "") a field of the tracking message.
type ctpPart struct {
	text, field string
}

func newClaimxTriggerFromConfig(conf *service.ParsedConfig, log *service.Logger) (*claimxTriggerProc, error) {
	p := &claimxTriggerProc{log: log, byTaskID: map[int64]*ctpTrigger{}}
	var err error
	if p.assignmentField, err = conf.FieldString(ctpFieldAssignmentField); err != nil {
		return nil, err
	}
	if strings.TrimSpace(p.assignmentField) == "" {
		return nil, errors.New(ctpFieldAssignmentField + " must not be empty")
	}
	tcs, err := conf.FieldObjectList(ctpFieldTriggers)
	if err != nil {
		return nil, err
	}
	if len(tcs) == 0 {
		return nil, errors.New(ctpErrNoTriggers)
	}
	first := map[int64]int{}
	for i, tc := range tcs {
		t, err := parseCTPTrigger(i, tc)
		if err != nil {
			return nil, err
		}
		if j, dup := first[t.taskID]; dup {
			return nil, fmt.Errorf("%s[%d] (task_id %d): task_id %d is already configured by %s[%d]",
				ctpFieldTriggers, i, t.taskID, t.taskID, ctpFieldTriggers, j)
		}
		first[t.taskID] = i
		p.byTaskID[t.taskID] = t
	}
	return p, nil
}

func parseCTPTrigger(i int, tc *service.ParsedConfig) (*ctpTrigger, error) {
	t := &ctpTrigger{}
	id, err := tc.FieldInt(ctpFieldTaskID)
	if err != nil {
		return nil, fmt.Errorf("%s[%d]: %w", ctpFieldTriggers, i, err)
	}
	t.taskID = int64(id)
	at := fmt.Sprintf("%s[%d] (task_id %d)", ctpFieldTriggers, i, t.taskID)
	if t.name, err = tc.FieldString(ctpFieldName); err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	if t.includeTask, err = tc.FieldBool(ctpFieldIncludeTaskData); err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	if t.includeProject, err = tc.FieldBool(ctpFieldIncludeProjectData); err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	for _, b := range []struct {
		field string
		dst   **ctpBlock
	}{
		{ctpFieldOnAny, &t.onAny},
		{ctpFieldOnAssigned, &t.onAssigned},
		{ctpFieldOnCompleted, &t.onCompleted},
	} {
		if !tc.Contains(b.field) {
			continue
		}
		blk, err := parseCTPBlock(tc.Namespace(b.field))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", at, b.field, err)
		}
		*b.dst = blk
	}
	if t.onAny == nil && t.onAssigned == nil && t.onCompleted == nil {
		return nil, fmt.Errorf("%s: %s", at, ctpErrNoBlock)
	}
	return t, nil
}

func parseCTPBlock(bc *service.ParsedConfig) (*ctpBlock, error) {
	b := &ctpBlock{}
	var err error
	if bc.Contains(ctpFieldPublishToTopic) {
		if b.topic, err = bc.FieldString(ctpFieldPublishToTopic); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(b.topic) == "" {
		return nil, errors.New(ctpErrNoTopic)
	}
	if !bc.Contains(ctpFieldLog) {
		return b, nil
	}
	lc := bc.Namespace(ctpFieldLog)
	level, err := lc.FieldString(ctpFieldLevel)
	if err != nil {
		return nil, err
	}
	l := &ctpLog{level: strings.ToLower(level)}
	if !ctpContains(ctpLevels, l.level) {
		return nil, fmt.Errorf("log level %q is not one of %s", level, strings.Join(ctpLevels, ", "))
	}
	msg, err := lc.FieldString(ctpFieldMessage)
	if err != nil {
		return nil, err
	}
	last := 0
	for _, m := range ctpPlaceholderRe.FindAllStringSubmatchIndex(msg, -1) {
		name := msg[m[2]:m[3]]
		if !ctpContains(ctpPlaceholders, name) {
			return nil, fmt.Errorf("log message placeholder %s names no field of the tracking message (use %s)",
				msg[m[0]:m[1]], ctpPlaceholderList())
		}
		if m[0] > last {
			l.parts = append(l.parts, ctpPart{text: msg[last:m[0]]})
		}
		l.parts = append(l.parts, ctpPart{field: name})
		last = m[1]
	}
	if last < len(msg) {
		l.parts = append(l.parts, ctpPart{text: msg[last:]})
	}
	b.log = l
	return b, nil
}

func ctpContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// claimxTriggerProc is the processor.
type claimxTriggerProc struct {
	log             *service.Logger
	assignmentField string
	byTaskID        map[int64]*ctpTrigger
}

// Process turns one event with its assignment into a tracking message, drops
// it, or fails it (the record's fault: never a processor error).
func (p *claimxTriggerProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	doc, err := msg.AsStructured()
	if err != nil {
		msg.SetError(fmt.Errorf("claimx_trigger: the message is not JSON: %w", err))
		return service.MessageBatch{msg}, nil
	}
	ev, ok := doc.(map[string]any)
	if !ok {
		msg.SetError(errors.New("claimx_trigger: the message is not a JSON object"))
		return service.MessageBatch{msg}, nil
	}
	a := ev[p.assignmentField]
	if a == nil {
		msg.SetError(fmt.Errorf("event %s: assignment %s is not known to the ClaimX API (404)",
			ctpText(ev["event_id"]), ctpText(ev["assignment_id"])))
		return service.MessageBatch{msg}, nil
	}
	// Like the Bloblang it replaces: an assignment that is not an object
	// has no fields, so no template, and is dropped.
	taskID, ok := ctpInt(ctpCoalesce(ctpGet(a, "taskId"), ctpGet(ctpGet(a, "customTask"), "taskId")))
	if !ok {
		return nil, nil
	}
	t := p.byTaskID[taskID]
	if t == nil {
		return nil, nil
	}
	eventType, _ := ev["event_type"].(string)
	b := t.onAny
	switch {
	case eventType == ctpEventAssigned && t.onAssigned != nil:
		b = t.onAssigned
	case eventType == ctpEventCompleted && t.onCompleted != nil:
		b = t.onCompleted
	}
	if b == nil {
		return nil, nil
	}

	status := "CANCELLED"
	if ctpGet(a, "cancelledDate") == nil {
		status = strings.NewReplacer(" ", "_", "-", "_").Replace(
			strings.ToUpper(strings.TrimSpace(ctpText(ctpCoalesce(ctpGet(a, "status"), "")))))
	}
	projectID := ev["project_id"]
	if s, isStr := projectID.(string); isStr && s == "" {
		if n, ok := ctpInt(ctpGet(a, "projectId")); ok {
			projectID = strconv.FormatInt(n, 10)
		}
	}
	out := map[string]any{
		"trigger_name":  t.name,
		"event_id":      jsonDeepCopy(ev["event_id"]),
		"event_type":    jsonDeepCopy(ev["event_type"]),
		"project_id":    jsonDeepCopy(projectID),
		"task_id":       taskID,
		"assignment_id": jsonDeepCopy(ev["assignment_id"]),
		"task_name":     jsonDeepCopy(ctpCoalesce(ctpGet(a, "taskName"), ctpGet(ctpGet(a, "customTask"), "name"))),
		"task_status":   status,
		"timestamp":     jsonDeepCopy(ev["event_time"]),
		"published_at":  time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"task":          nil,
		"project":       nil,
	}
	if t.includeTask {
		out["task"] = map[string]any{
			"assignment_id":    jsonDeepCopy(ctpCoalesce(ctpGet(a, "assignmentId"), ev["assignment_id"])),
			"task_id":          taskID,
			"status":           status,
			"assignee_id":      jsonDeepCopy(ctpGet(a, "assigneeId")),
			"assignor_id":      jsonDeepCopy(ctpGet(a, "assignorId")),
			"assignor_email":   jsonDeepCopy(ctpGet(a, "assignor")),
			"date_assigned":    jsonDeepCopy(ctpGet(a, "dateAssigned")),
			"date_completed":   jsonDeepCopy(ctpGet(a, "dateCompleted")),
			"cancelled_date":   jsonDeepCopy(ctpGet(a, "cancelledDate")),
			"form_id":          jsonDeepCopy(ctpGet(a, "formId")),
			"form_response_id": jsonDeepCopy(ctpGet(a, "formResponseId")),
		}
	}

	line := ""
	if b.log != nil {
		var sb strings.Builder
		for _, part := range b.log.parts {
			if part.field == "" {
				sb.WriteString(part.text)
			} else if v := out[part.field]; v != nil {
				sb.WriteString(ctpText(v))
			}
		}
		line = sb.String()
	}
	msg.SetStructuredMut(out)
	msg.MetaSetMut(TriggerMetaPublishTopic, b.topic)
	msg.MetaSetMut(TriggerMetaIncludeProject, strconv.FormatBool(t.includeProject))
	msg.MetaSetMut(TriggerMetaLogMessage, line)
	if line != "" && p.log != nil {
		switch b.log.level {
		case "debug":
			p.log.Debug(line)
		case "warn":
			p.log.Warn(line)
		case "error":
			p.log.Error(line)
		default:
			p.log.Info(line)
		}
	}
	return service.MessageBatch{msg}, nil
}

// Close releases nothing: the processor holds no resources.
func (p *claimxTriggerProc) Close(context.Context) error { return nil }

// ctpGet is a field of an object; nil for a missing field or a value that is
// not an object.
func ctpGet(v any, key string) any {
	if m, ok := v.(map[string]any); ok {
		return m[key]
	}
	return nil
}

// ctpCoalesce is the first value that is not null.
func ctpCoalesce(vs ...any) any {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// ctpInt reads an integer as Bloblang's int64() does, but parses strings as
// decimal only ("032513" is 32513, never octal).
func ctpInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case int:
		return int64(t), true
	case int32:
		return int64(t), true
	case uint64:
		return int64(t), t <= math.MaxInt64
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) || t != math.Trunc(t) || t >= math.MaxInt64 || t < math.MinInt64 {
			return 0, false
		}
		return int64(t), true
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(t, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// ctpText is a value as text: strings as they are, numbers in decimal
// (integral floats without a fraction), null as "null", anything else as
// JSON.
func ctpText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case uint64:
		return strconv.FormatUint(t, 10)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
