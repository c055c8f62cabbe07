package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/forms"
)

const (
	cfFieldMappingFile = "mapping_file"
	cfFieldSource      = "source"
)

func claimxFormConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Mapping").
		Version("0.1.0").
		Summary("Turns a completed ClaimX form assignment into one typed row, following a declarative question→column mapping.").
		Description(`
The message (or the object at `+"`"+cfFieldSource+"`"+`) is a ClaimX assignment as
`+"`GET /customTasks/assignment/{id}?full=true`"+` returns it. Its answers
(`+"`response.groups[].questionAndAnswers[]`"+`) become the columns the mapping file names; the
result replaces the message content, one key per column of the table (null when unanswered):

- fixed columns from the assignment: `+"`assignment_id`, `project_id`, `task_id`, `form_id`, `form_response_id`, `date_completed`, `customer_first_name`, `customer_last_name`, `customer_email`, `customer_phone`, `external_link_url`"+`;
- one column per mapping entry, typed `+"`string`, `boolean` (Yes/No), `long`, `double` or `array<long>`"+` (image media ids);
- `+"`other_answers`"+`, a map from "group / question text" to the answer for every question the mapping does not name: an unknown question is kept, never dropped.

The mapping file is YAML (see `+"`pipelines/forms/itel_cabinet_form.yaml`"+`): `+"`form`"+`, optional
`+"`task_ids`"+` (other templates are refused), and `+"`questions`"+`, each matching by
`+"`control_id`"+` or by `+"`question`"+` text (case and white space ignored), optionally only within
`+"`group`"+`, and giving `+"`column`"+`, `+"`type`"+`, optional `+"`unit`"+` and, for options,
`+"`values`"+`. It is checked when the processor starts: duplicate columns, unknown types and
ambiguous matches stop the stream with an error naming the entry.

A message that cannot become a row keeps its content and flows on with its error set (route it
with `+"`catch`"+` or `+"`switch`"+` on `+"`errored()`"+`); the rest of the batch is unaffected. The
errors: an assignment that is not completed (its response is null), of a template outside
`+"`task_ids`"+`, or an answer that does not parse for its column, named with its question, group,
control id and value, for example:

`+"```"+`
claimx_form: assignment 5423001: question "Lower cabinets linear feet" (group "Lower Cabinets", control "ctl_3f09a1c2") → column lower_cabinets_linear_feet (double): cannot use {"text":"about ten","type":"text"}: "about ten" is not a number
`+"```"+``).
		Fields(
			service.NewStringField(cfFieldMappingFile).
				Description("Path of the YAML question→column mapping.").
				Example("./pipelines/forms/itel_cabinet_form.yaml"),
			service.NewStringField(cfFieldSource).
				Description("Dotted path of the assignment in the message: an object, or text holding its JSON (as the worker's `claimx_task_full`). Empty means the whole message. A numeric segment indexes an array.").
				Default("").
				Example("claimx_task_full"),
		).
		Example("Forms rows from tracking rows", "The worker keeps the assignment as JSON text in `claimx_task_full`.", `
pipeline:
  processors:
    - claimx_form:
        mapping_file: ./pipelines/forms/itel_cabinet_form.yaml
        source: claimx_task_full
`)
}

func init() {
	service.MustRegisterProcessor("claimx_form", claimxFormConfigSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			return newClaimxFormFromConfig(conf)
		})
}

func newClaimxFormFromConfig(conf *service.ParsedConfig) (*claimxFormProc, error) {
	path, err := conf.FieldString(cfFieldMappingFile)
	if err != nil {
		return nil, err
	}
	m, err := forms.LoadMapping(path)
	if err != nil {
		return nil, err
	}
	source, err := conf.FieldString(cfFieldSource)
	if err != nil {
		return nil, err
	}
	p := &claimxFormProc{mapping: m, source: source}
	if source = strings.TrimSpace(source); source != "" {
		p.path = strings.Split(source, ".")
		for _, s := range p.path {
			if s == "" {
				return nil, fmt.Errorf("%s %q has an empty path segment", cfFieldSource, source)
			}
		}
	}
	return p, nil
}

// claimxFormProc is the processor: a forms.Mapping applied to each message.
type claimxFormProc struct {
	mapping *forms.Mapping
	source  string
	path    []string // nil: the whole message
}

// Process replaces a completed assignment by its row, or flags the message.
func (p *claimxFormProc) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	row, err := p.row(msg)
	if err != nil {
		msg.SetError(fmt.Errorf("claimx_form: %w", err))
		return service.MessageBatch{msg}, nil
	}
	msg.SetStructuredMut(row)
	return service.MessageBatch{msg}, nil
}

func (p *claimxFormProc) row(msg *service.Message) (map[string]any, error) {
	doc, err := msg.AsStructured()
	if err != nil {
		return nil, fmt.Errorf("message is not JSON: %w", err)
	}
	v, found := vpLookup(doc, p.path)
	if !found || v == nil {
		return nil, fmt.Errorf("%s %q: no assignment there", cfFieldSource, p.source)
	}
	if text, isText := v.(string); isText {
		// The worker keeps the assignment as JSON text (claimx_task_full).
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s %q holds text that is not JSON: %w", cfFieldSource, p.source, err)
		}
	}
	a, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the assignment is " + vpShow(v) + ", not an object")
	}
	return p.mapping.Apply(a)
}

// Close releases nothing: the processor holds no resources.
func (p *claimxFormProc) Close(context.Context) error { return nil }
