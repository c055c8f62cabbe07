package processors

import (
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/internal/hold"
)

// Fields shared by the processors that call a dependency (claimx_connection,
// delta_lake): what they do when it is unavailable.
const (
	holdFieldOnUnavailable   = "on_unavailable"
	holdFieldTimeout         = "hold_timeout"
	holdFieldMaxInterval     = "hold_max_interval"
	holdFieldInitialInterval = "hold_initial_interval"
)

// holdFields are the config fields of a hold; dependency names the
// dependency in the docs ("the ClaimX API").
func holdFields(dependency string) []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringAnnotatedEnumField(holdFieldOnUnavailable, map[string]string{
			string(hold.ModeHold):  "Pause the stream: the batch is not acknowledged (its Kafka offsets do not advance) and " + dependency + " is probed with capped exponential backoff until it answers; then the batch goes on. Nothing goes to an errors topic because of an outage.",
			string(hold.ModeError): "Fail the records with the error, for a pipeline that routes them to a dead-letter topic (replay them later with `claimx-connect errors replay`).",
		}).Description("What a failure of " + dependency + " (not of the record) does.").Default(string(hold.ModeHold)),
		service.NewDurationField(holdFieldTimeout).
			Description("With `on_unavailable: hold`, stop the process with a fatal error (exit code 3; the held records are not committed, the next process takes them) once a hold has lasted this long. `0s` holds for as long as it takes.").
			Default("0s"),
		service.NewDurationField(holdFieldMaxInterval).
			Description("Longest wait between two probes while holding (a Retry-After from the dependency may ask for longer and is honoured).").
			Default("30s"),
		service.NewDurationField(holdFieldInitialInterval).
			Description("Wait before the first probe; it doubles up to `" + holdFieldMaxInterval + "`, with ±20% jitter.").
			Default("1s").Advanced(),
	}
}

// holdSettings are the parsed hold fields.
type holdSettings struct {
	mode hold.Mode
	cfg  hold.Config
}

func parseHoldSettings(conf *service.ParsedConfig) (s holdSettings, err error) {
	mode, err := conf.FieldString(holdFieldOnUnavailable)
	if err != nil {
		return s, err
	}
	s.mode = hold.Mode(mode)
	if s.cfg.Timeout, err = conf.FieldDuration(holdFieldTimeout); err != nil {
		return s, err
	}
	if s.cfg.MaxInterval, err = conf.FieldDuration(holdFieldMaxInterval); err != nil {
		return s, err
	}
	if s.cfg.InitialInterval, err = conf.FieldDuration(holdFieldInitialInterval); err != nil {
		return s, err
	}
	if s.cfg.MaxInterval <= 0 || s.cfg.InitialInterval <= 0 || s.cfg.Timeout < 0 {
		return s, fmt.Errorf("%s and %s must be positive and %s not negative", holdFieldMaxInterval, holdFieldInitialInterval, holdFieldTimeout)
	}
	return s, nil
}

// newHoldGate builds the gate of one processor with metrics
// <prefix><dep>_available, _records_held, _hold_seconds_total and
// _holds_total{reason}, and structured logs naming the dependency.
func newHoldGate(res *service.Resources, s holdSettings, dependency, metricPrefix string) *hold.Gate {
	m := res.Metrics()
	o := &holdObserver{
		dependency: dependency,
		log:        res.Logger(),
		available:  m.NewGauge(metricPrefix + "_available"),
		held:       m.NewGauge(metricPrefix + "_records_held"),
		seconds:    m.NewCounter(metricPrefix + "_hold_seconds_total"),
		holds:      m.NewCounter(metricPrefix+"_holds_total", "reason"),
	}
	o.available.Set(1)
	o.held.Set(0)
	g := hold.NewGate(s.cfg, o)
	g.OnFatal = func(err error) { holdFatal(err) }
	return g
}

// holdFatal is what a hold that outlasts hold_timeout does; tests replace it.
var holdFatal = hold.StopProcess

// holdObserver turns a gate's events into metrics and logs.
type holdObserver struct {
	dependency string
	log        *service.Logger
	available  *service.MetricGauge
	held       *service.MetricGauge
	seconds    *service.MetricCounter
	holds      *service.MetricCounter
}

func (o *holdObserver) Entered(reason string, records int, err error) {
	o.available.Set(0)
	o.holds.Incr(1, reason)
	o.log.With("dependency", o.dependency, "reason", reason, "records", records, "error", err.Error()).
		Warn("dependency unavailable: holding the stream")
}

func (o *holdObserver) Left(heldFor time.Duration, records int) {
	o.available.Set(1)
	o.log.With("dependency", o.dependency, "held_for", heldFor.Round(time.Millisecond).String(),
		"held_seconds", heldFor.Seconds(), "records", records).
		Info("dependency available again: resuming")
}

func (o *holdObserver) RecordsHeld(n int)   { o.held.Set(int64(n)) }
func (o *holdObserver) HeldSeconds(n int64) { o.seconds.Incr(n) }

func (o *holdObserver) TimedOut(heldFor time.Duration, err error) {
	o.log.With("dependency", o.dependency, "held_for", heldFor.Round(time.Second).String(), "error", err.Error()).
		Error("dependency unavailable longer than hold_timeout: stopping")
}
